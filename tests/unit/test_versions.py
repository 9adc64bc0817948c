"""A specialist's version: what its answers depend on, the text of its chat template
included (a template file edited under the same name is a new version; `mixserve deploy`
rolls the engine over and the response cache stops answering from the old one)."""

from __future__ import annotations

from orchestrator import profiles
from orchestrator.config import load_config, parse_config
from orchestrator.versions import config_versions, specialist_version
from tests.unit.test_engines import BASE, fleet


def test_an_edited_template_file_is_a_new_version(tmp_path):
    template = tmp_path / "qa.jinja"
    template.write_text("{% for m in messages %}Q: {{ m.content }}\n{% endfor %}A:")
    data = fleet(("general", {"engine": "base"}), ("math", {"engine": "base"}),
                 engines=[{**BASE, "chat_template": "qa.jinja"}])  # fmt: skip
    before = config_versions(parse_config(data, base_dir=tmp_path))
    template.write_text("{% for m in messages %}Question: {{ m.content }}\n{% endfor %}Answer:")
    after = config_versions(parse_config(data, base_dir=tmp_path))
    assert before.keys() == after.keys() == {"general", "math"}
    assert all(before[name] != after[name] for name in before)


def test_the_version_follows_what_changes_answers_and_not_the_replica_count():
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    math = cfg.specialist("math")
    text = cfg.chat_template(math)
    assert text is not None and config_versions(cfg)["math"] == specialist_version(math, text)
    assert specialist_version(math, text) != specialist_version(math, text + " ")
    for changed in ({"solver": None}, {"system_prompt": "x"}, {"stop": []}):
        other = math.model_copy(update=changed)
        assert specialist_version(other, text) != specialist_version(math, text), changed
    more = math.model_copy(update={"replicas": 3, "max_queued_requests": 99})
    assert specialist_version(more, text) == specialist_version(math, text)
