"""``POST /v1/retrieval/search`` on the running service: a collection's best passages with
their file, offset and score; bad input is a 4xx naming the problem, never a 500."""

from __future__ import annotations

import pytest

from orchestrator.serving.protocol import SEARCH_QUERY_CHARS

URL = "/v1/retrieval/search"


def test_search_returns_passages_with_file_offset_and_score(client):
    resp = client.post(
        URL, json={"collection": "docs", "query": "How does mixserve down stop things?", "top_k": 3}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list" and body["collection"] == "docs"
    hits = body["data"]
    assert 1 <= len(hits) <= 3
    assert hits[0]["source"] == "operations.md" and "mixserve down" in hits[0]["text"]
    for h in hits:
        assert set(h) == {"source", "offset", "score", "text", "heading", "id"}
        assert h["id"] == f"{h['source']}#{h['offset']}" and -1 <= h["score"] <= 1


def test_collections_lists_each_ones_live_version_size_and_index(client):
    listed = client.get("/v1/retrieval/collections").json()
    assert listed["object"] == "list"
    (docs,) = listed["data"]
    assert docs["collection"] == "docs" and docs["status"] == "ready"
    assert docs["version"].startswith("v") and docs["chunks"] > 10
    assert docs["index"]["kind"] == "flat" and docs["shard_nodes"] == []


def test_min_score_drops_weaker_passages(client):
    query = {"collection": "docs", "query": "router confidence threshold", "top_k": 10}
    every = client.post(URL, json=query).json()["data"]
    cut = sorted(h["score"] for h in every)[len(every) // 2]
    kept = client.post(URL, json={**query, "min_score": cut}).json()["data"]
    assert kept and all(h["score"] >= cut for h in kept) and len(kept) < len(every)


def test_unknown_collection_is_404_naming_the_ones_there_are(client):
    resp = client.post(URL, json={"collection": "nope", "query": "anything"})
    assert resp.status_code == 404, resp.text
    error = resp.json()["error"]
    assert error["code"] == "collection_not_found" and error["param"] == "collection"
    assert "'nope'" in error["message"] and "'docs'" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"collection": "docs", "query": 42}, "query"),
        ({"collection": "docs", "query": ["a", "b"]}, "query"),
        ({"collection": "docs", "query": ""}, "query"),
        ({"collection": "docs", "query": "   \n"}, "query"),
        ({"collection": "docs", "query": "x" * (SEARCH_QUERY_CHARS + 1)}, "query"),
        ({"collection": "docs"}, "query"),
        ({"collection": 7, "query": "routing"}, "collection"),
        ({"collection": "docs", "query": "routing", "top_k": 0}, "top_k"),
        ({"collection": "docs", "query": "routing", "top_k": 101}, "top_k"),
        ({"collection": "docs", "query": "routing", "top_k": "5"}, "top_k"),
        ({"collection": "docs", "query": "routing", "min_score": 2}, "min_score"),
        ({"collection": "docs", "query": "routing", "rerank": True}, "rerank"),
    ],
)
def test_bad_search_requests_are_400_naming_the_field(client, body, param):
    resp = client.post(URL, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_search_needs_a_key(service):
    import httpx

    resp = httpx.post(service.url + URL, json={"collection": "docs", "query": "routing"})
    assert resp.status_code == 401
