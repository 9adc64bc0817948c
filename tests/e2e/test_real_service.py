"""Against the real service: real vLLM engines, real router LLM, real FAISS retrieval."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from orchestrator.runtime.procs import pids_of_run
from tests.e2e.conftest import PLANTED_FACT, PLANTED_QUESTION
from tests.helpers.http import ask
from tests.helpers.paths import SHARED_DATA


def test_code_and_math_questions_land_on_different_specialists(client):
    code = ask(client, "Write a Python function that reverses a list")
    math = ask(client, "What is 12 * 7?")
    assert code.status_code == math.status_code == 200
    assert code.headers["x-mixserve-specialist"] == "code"
    assert math.headers["x-mixserve-specialist"] == "math"
    assert "def " in code.json()["choices"][0]["message"]["content"]


def test_the_router_decides_sure_queries_at_its_early_exit(client):
    # a benchmark-style word problem, read from the shared routing data (never copied
    # here): the profile's layer-1 probe is sure of the first GSM8K question
    gsm8k = SHARED_DATA / "routerdc" / "gsm8k_train.jsonl"
    assert gsm8k.is_file(), f"routing data not found at {gsm8k}"
    with gsm8k.open(encoding="utf-8") as lines:
        word_problem = json.loads(next(lines))["query"]
    early = ask(client, word_problem, max_tokens=4).json()["mixserve"]["routing"]
    assert (early["choice"], early["layer"], early["head"]) == ("math", 1, "linear")
    # a query it is unsure of, and on which the layer-1 few-shot head does not agree with
    # it (benchmarks/router_early_exit.py), goes on to the few-shot head at full depth
    deep = ask(client, "Who painted the Mona Lisa?", max_tokens=4).json()["mixserve"]["routing"]
    assert (deep["choice"], deep["layer"], deep["head"]) == ("general", 18, "nearest_centroid")


def test_a_real_model_answers_a_factual_question(client):
    resp = ask(client, "What is the capital of France?")
    body = resp.json()
    assert resp.status_code == 200
    assert body["mixserve"]["specialist"] == "general"
    assert "Paris" in body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5 and 0 < usage["completion_tokens"] <= 48


def test_streamed_completion(client):
    resp = ask(client, "Write a Python function that adds two numbers", stream=True)
    assert resp.status_code == 200
    data = [ln[6:] for ln in resp.text.splitlines() if ln.startswith("data: ")]
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    deltas = [e["choices"][0]["delta"].get("content") for e in events[1:] if e["choices"]]
    assert sum(1 for d in deltas if d) >= 3, "tokens should arrive in several chunks"
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert events[0]["mixserve"]["specialist"] == "code"


def test_query_endpoint_grounds_on_the_docs(client):
    resp = client.post(
        "/v1/query",
        json={
            "query": "What does the nearest-centroid head subtract before averaging examples?",
            "max_tokens": 40,
        },
    )
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["answer"].strip()
    assert any(s["source"] == "routing.md" for s in body["sources"])
    assert body["usage"]["prompt_tokens"] > 100  # the passages went into the prompt


def test_a_planted_fact_is_found_and_named_in_the_sources(client):
    resp = client.post("/v1/query", json={"query": PLANTED_QUESTION, "max_tokens": 24})
    body = resp.json()
    assert resp.status_code == 200, body
    planted = [s for s in body["sources"] if s["collection"] == "planted"]
    assert planted and planted[0]["source"] == "architecture.md"
    search = client.post(
        "/v1/retrieval/search",
        json={"collection": "planted", "query": PLANTED_QUESTION, "top_k": 5},
    ).json()["data"]
    found = next(h for h in search if PLANTED_FACT in h["text"])
    assert found["id"] in {s["id"] for s in planted}  # the fact's own chunk went in the prompt


def test_each_collection_is_served_by_its_own_retriever_and_shards(client):
    listed = client.get("/v1/retrieval/collections").json()["data"]
    by_name = {c["collection"]: c for c in listed}
    assert set(by_name) == {"docs", "planted"}
    assert all(c["status"] == "ready" and c["chunks"] > 0 for c in listed)
    assert by_name["docs"]["shard_nodes"] == []  # one index in its retriever's process
    planted = by_name["planted"]
    assert planted["index"]["kind"] == "flat" and len(planted["shard_nodes"]) == 2


def test_openai_client(live):
    from openai import OpenAI

    oai = OpenAI(base_url=f"{live['url']}/v1", api_key="unused", timeout=300)
    out = oai.chat.completions.create(
        model="general",
        temperature=0,
        max_tokens=20,
        messages=[{"role": "user", "content": "Name a primary color."}],
    )
    assert out.choices[0].message.content.strip()
    assert out.usage is not None and out.usage.completion_tokens > 0
    stream = oai.chat.completions.create(
        model="auto",
        stream=True,
        max_tokens=20,
        messages=[{"role": "user", "content": "What is 3 + 4?"}],
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip()


def test_prompt_over_the_real_context_is_a_400(client):
    resp = ask(client, "word " * 2500, model="math")
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "context_length_exceeded"


def test_status_command_reports_every_component_ready(live):
    result = subprocess.run(
        [*live["cli"], "status", "--json"],
        env=live["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["ready"] is True and info["run_id"] == live["run_id"]
    assert set(info["components"]) >= {
        "router",
        "retriever:docs",
        "retriever:planted",
        "specialist:code",
        "redis",
    }
    # the cluster's view, through the dashboard with Ray's token: replicas by node,
    # and each specialist's version as configured and as its replica runs it
    assert isinstance(info["deployments"], list), info["deployments"]
    engine = next(d for d in info["deployments"] if d["deployment"] == "engine-gemma")
    assert engine["application"] == "mixserve-engine-gemma" and engine["status"] == "HEALTHY"
    assert sum(engine["replicas_by_node"].values()) == 1
    gateway = next(d for d in info["deployments"] if d["deployment"] == "gateway")
    assert sum(gateway["replicas_by_node"].values()) == 2
    code = next(sp for sp in info["specialists"] if sp["name"] == "code")
    assert code["version"] and code["running_version"] == code["version"]


def test_health_endpoints(live):
    assert httpx.get(f"{live['url']}/healthz").json() == {"status": "ok"}


def test_the_real_engine_reports_its_load_and_prefix_cache_hits(live):
    """vLLM's scheduler figures reach `/v1/specialists` (as they reach the replica
    router): a prompt of a few hundred tokens sent twice hits the engine's prefix cache,
    whose blocks are 128 tokens on the CPU backend."""

    def engine_load():
        data = httpx.get(f"{live['url']}/v1/specialists", timeout=30).json()["data"]
        return next(s["stats"]["engine_load"] for s in data if s["name"] == "general")

    before = engine_load()
    notes = " ".join(f"note{i}" for i in range(300))  # ~600 tokens, several whole blocks
    body = {
        "model": "general",
        "max_tokens": 1,
        "temperature": 0.5,  # not served from the response cache (temperature 0 only)
        "messages": [{"role": "user", "content": f"{notes}. Summarise these notes."}],
    }
    with httpx.Client(base_url=live["url"], timeout=120) as c:
        answers = [c.post("/v1/chat/completions", json=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    after = engine_load()
    assert after["prefix_queries"] - before["prefix_queries"] >= 2 * 300
    assert after["prefix_hits"] - before["prefix_hits"] >= 256  # the second found the first's
    # and the second answer says so, as OpenAI's usage does
    cached = answers[1].json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 256 <= cached < answers[1].json()["usage"]["prompt_tokens"]
    # the scheduler's last step's view (no step runs while idle): within its bounds
    assert after["running"] >= 0 and after["waiting"] >= 0 and 0 <= after["kv_cache_usage"] <= 1


def test_disconnect_aborts_the_real_engine_generation(live):
    def general_stats():
        data = httpx.get(f"{live['url']}/v1/specialists", timeout=30).json()["data"]
        return next(s["stats"] for s in data if s["name"] == "general")

    before = general_stats()
    body = {
        "model": "general",
        "stream": True,
        "temperature": 0,
        "max_tokens": 1000,  # ~20 s of generation here if it were not aborted
        "messages": [{"role": "user", "content": "Count from 1 to 1000: 1, 2, 3, 4,"}],
    }
    with (
        httpx.Client(base_url=live["url"], timeout=120) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        seen = 0
        for line in resp.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                seen += 1
                if seen == 3:
                    break  # hang up mid-answer
    deadline = time.monotonic() + 10
    stats = general_stats()
    while (stats["aborted"] == before["aborted"] or stats["engine_unfinished"]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.25)
        stats = general_stats()
    assert stats["aborted"] == before["aborted"] + 1
    assert stats["engine_unfinished"] == 0 and stats["in_flight"] == 0


def test_a_stop_string_ends_a_real_answer_just_before_it(client):
    """Stop strings are matched as the text streams (specialists.stops), not by vLLM:
    the answer ends right before the first occurrence, which is never sent."""
    question = "Describe the city of Paris in a few sentences."
    full = ask(client, question, model="general", max_tokens=32).json()
    text = full["choices"][0]["message"]["content"]
    assert len(text) > 12, text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    body = ask(client, question, model="general", max_tokens=32, stop=[stop]).json()
    choice = body["choices"][0]
    assert choice["message"]["content"] == text[: text.index(stop)]
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] < full["usage"]["completion_tokens"]
    streamed = ask(client, question, model="general", max_tokens=32, stop=[stop], stream=True)
    events = [json.loads(ln[6:]) for ln in streamed.text.splitlines()
              if ln.startswith("data: {")]  # fmt: skip
    deltas = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert deltas == text[: text.index(stop)]


def test_the_service_runs_from_its_installed_wheel(live):
    """Every process of the run that names a Python interpreter names the clean venv's
    (the wheel alone); Ray's workers, started by that interpreter, rename themselves."""
    interpreters = []
    for pid in pids_of_run(live["run_id"]):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        head = argv[0].decode(errors="replace")
        if "python" in Path(head.split()[0] if head else "").name:
            interpreters.append(head)
    assert interpreters, "no process of the run names a Python interpreter"
    venv = str(live["venv"])
    assert all(head.startswith(venv) for head in interpreters), interpreters
