"""The load harness's parts that need no server: prompt mixes, arrivals, reports, the
parsing of a streamed answer, and the guard that keeps loads on this machine."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter

import pytest

from loadgen.arrivals import poisson_times
from loadgen.client import Outcome, absorb_event, moved
from loadgen.mix import ContextMix, MixError, Prompt, QueryMix, read_queries
from loadgen.report import percentile, summarize
from loadgen.run import LoadSpec


def test_a_skewed_mix_draws_its_share_from_one_group():
    mix = QueryMix({"math": ["m"], "code": ["c"], "general": ["g1", "g2"]}).skewed("math", 0.8)
    rng = random.Random(1)
    counts = Counter(mix.sample(rng).group for _ in range(20_000))
    assert counts["math"] / 20_000 == pytest.approx(0.8, abs=0.01)
    assert counts["code"] / 20_000 == pytest.approx(0.1, abs=0.01)
    with pytest.raises(MixError, match="no group 'nope'"):
        mix.skewed("nope", 0.5)
    with pytest.raises(MixError, match="between 0 and 1"):
        mix.skewed("math", 1.5)


def test_mixes_read_score_tables_and_name_bad_lines(tmp_path):
    table = tmp_path / "gsm8k_train.jsonl"
    table.write_text(
        '{"query": "What is 2+2?", "scores": {}}\n\n{"query": "And 3+3?\u2028"}\n',
        encoding="utf-8",
    )  # a line separator inside a string does not end the line
    mix = QueryMix.from_files([str(table), f"other={table}"])
    assert set(mix.groups) == {"gsm8k", "other"} and mix.groups["gsm8k"] == [
        "What is 2+2?",
        "And 3+3?\u2028",
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok"}\n{"prompt": "x"}\n')
    with pytest.raises(MixError, match=r"bad.jsonl:2: not a JSON object with a 'query'"):
        read_queries(bad)
    with pytest.raises(MixError, match="cannot read"):
        read_queries(tmp_path / "missing.jsonl")


def test_poisson_arrivals_come_at_their_rate():
    times = poisson_times(50.0, 200.0, random.Random(7))
    assert len(times) / 200.0 == pytest.approx(50.0, rel=0.03)
    assert times == sorted(times) and 0 < times[0] and times[-1] < 200.0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 50, rel=0.05)
    with pytest.raises(ValueError):
        poisson_times(0.0, 10.0, random.Random(0))


def test_a_streamed_answer_is_timed_at_its_first_content_and_counts_its_tokens():
    out = Outcome("math", 200, 0.0, 0.0)
    first = {
        "choices": [{"delta": {"role": "assistant", "content": ""}}],
        "model": "math",
        "mixserve": {"request_id": "req-1"},
    }
    text = {"choices": [{"delta": {"content": "4"}}]}
    usage = {"choices": [], "usage": {"completion_tokens": 7}}
    for elapsed, event in ((0.1, first), (0.3, text), (0.5, usage)):
        absorb_event(out, "data: " + json.dumps(event), elapsed)
    absorb_event(out, "data: [DONE]", 0.6)
    assert (out.ttft_s, out.output_tokens, out.specialist, out.answered) == (0.3, 7, "math", True)
    assert out.request_id == "req-1"  # its trace, for the stages of its first token
    failed = Outcome("math", 200, 0.0, 0.0)
    absorb_event(failed, 'data: {"error": {"code": "timeout"}}', 1.0)
    assert failed.error == "timeout" and not failed.answered


def test_the_report_counts_every_kind_of_outcome():
    outcomes = [
        Outcome("a", 200, 0.0, 1.0, ttft_s=0.2, output_tokens=10, specialist="x"),
        Outcome("a", 200, 0.5, 3.0, ttft_s=0.4, output_tokens=30, specialist="x"),
        Outcome("b", 429, 1.0, 0.01, error="rate_limit_exceeded"),
        Outcome("b", 503, 1.0, 0.02, error="overloaded"),
        Outcome("b", 500, 2.0, 0.1, error="internal_error"),
        Outcome("b", 0, 2.0, 2.0, error="client_timeout"),
    ]
    report = summarize(outcomes, slo_s=2.0)
    assert report["wall_s"] == 4.0  # the second answer ends at 0.5 + 3.0; the timeout at 4.0
    o = report["overall"]
    assert (o["requests"], o["answered"], o["refused"], o["count_5xx"]) == (6, 2, 2, 1)
    assert o["errors"] == {"client_timeout": 1, "internal_error": 1}
    assert o["client_timeouts"] == 1
    assert o["goodput_rps"] == 0.25 and o["goodput_share"] == pytest.approx(1 / 6, abs=1e-4)
    assert o["output_tokens_per_s"] == 10.0 and o["throughput_rps"] == 0.5
    assert o["ttft_ms"]["p50"] == 300.0 and o["latency_ms"]["p99"] == pytest.approx(2980.0)
    assert set(report["by_group"]) == {"a", "b"} and set(report["by_specialist"]) == {"x", "-"}
    assert percentile([], 0.5) is None and percentile([1.0, 2.0, 3.0], 0.5) == 2.0


def test_loads_stay_on_this_machine_unless_allowed():
    LoadSpec("http://127.0.0.1:8000").check()
    LoadSpec("http://localhost:8000").check()
    with pytest.raises(ValueError, match="not on this machine"):
        LoadSpec("http://10.0.0.5:8000").check()
    LoadSpec("http://10.0.0.5:8000").check(allow_remote=True)
    with pytest.raises(ValueError, match="rate above 0"):
        LoadSpec("http://127.0.0.1:8000", mode="open").check()


def test_the_peer_gets_the_same_engine_settings_as_flags():
    from loadgen.peer import engine_flags, vllm_command

    flags = engine_flags({"dtype": "bfloat16", "enforce_eager": True, "x_off": False, "y": None})
    assert flags == ["--dtype", "bfloat16", "--enforce-eager"]
    grouped = engine_flags({"structured_outputs_config": {"disable_any_whitespace": True}})
    assert grouped == ["--structured-outputs-config", '{"disable_any_whitespace": true}']
    cmd = vllm_command("/models/g", "general", 8123, 2048, {"max_num_seqs": 16})
    assert cmd[1:5] == ["-m", "vllm.entrypoints.openai.api_server", "--model", "/models/g"]
    assert cmd[-2:] == ["--max-num-seqs", "16"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"  # the peer stays on this machine
    assert cmd[cmd.index("--served-model-name") + 1] == "general"


def test_the_overhead_and_overload_summaries_are_ratios_within_rounds():
    from mixserve_bench.cli.suites import _overhead_summary, _overload_summary

    def report(tps, ttft50, ttft99, goodput=1.0, p99=1000.0, refusal=None, n5xx=0):
        return {"overall": {"output_tokens_per_s": tps, "goodput_rps": goodput,
                            "ttft_ms": {"p50": ttft50, "p99": ttft99},
                            "latency_ms": {"p99": p99}, "refusal_ms": {"p99": refusal},
                            "count_5xx": n5xx, "client_timeouts": 0,
                            "errors": {"client_error: ReadError": 2} if n5xx else {}}}  # fmt: skip

    rounds = {
        "vllm_serve": [report(100, 200, 400), report(50, 300, 600)],
        "pinned": [report(90, 210, 420), report(50, 330, 600)],  # 0.9 then 1.0 of the peer
        "routed": [report(45, 0, 0), report(50, 0, 0)],
    }
    summary = _overhead_summary(rounds, {"decision_p50": 7.5})
    assert summary == {"throughput_ratio": 0.95, "added_ttft_ms": {"p50": 20.0, "p99": 10.0},
                       "routed_ratio": 0.75, "router_p50_ms": 7.5}  # fmt: skip
    load = {"peak": [report(0, 0, 0, goodput=2.0, p99=1000)],
            "overload": [report(0, 0, 0, goodput=1.8, p99=1500, refusal=12.5, n5xx=1)]}  # fmt: skip
    load["overload"][0]["probe"] = {"refused": {"count": 9, "p50": 3.0, "p99": 8.5}}
    load["overload"][0]["client_loop_lag_ms"] = {"p50": 1.0, "p99": 40.0}
    stages = ("client", "before_gateway", "in_gateway", "after_gateway")
    load["overload"][0]["refusal_stages"] = {s: {"p50": i, "p99": 10 * i}
                                             for i, s in enumerate(stages)}  # fmt: skip
    assert _overload_summary(load) == {"goodput_ratio": 0.9, "admitted_p99_ratio": 1.5,
                                       "reject_p99_ms": 12.5, "probe_reject_p99_ms": 8.5,
                                       "refusal_stages_p50_p99_ms": {
                                           "client": [0, 0], "before_gateway": [1, 10],
                                           "in_gateway": [2, 20], "after_gateway": [3, 30]},
                                       "client_loop_lag_p99_ms": 40.0, "broken_connections": 2,
                                       "count_5xx": 1, "client_timeouts": 0}  # fmt: skip


def test_prefix_hits_and_balancing_moves_are_read_from_the_stream_and_reported():
    out = Outcome("a", 200, 0.0, 0.0)
    first = {
        "choices": [{"delta": {"content": "x"}}],
        "mixserve": {"request_id": "r", "routing": {"reassigned_from": "code"}, "policy": {}},
    }
    usage = {"choices": [], "usage": {"completion_tokens": 2, "prompt_tokens": 300,
                                      "prompt_tokens_details": {"cached_tokens": 256}}}  # fmt: skip
    for event in (first, usage):
        absorb_event(out, "data: " + json.dumps(event), 0.1)
    assert (out.prompt_tokens, out.cached_tokens, out.moved) == (300, 256, "reassigned")
    spilled = {"calls": [{"role": "answer"}, {"role": "spill"}]}
    assert moved({"policy": spilled}) == "spilled"
    assert moved({"policy": {"waited_s": 0.4}}) == "waited" and moved({}) == ""
    other = Outcome("a", 200, 0.0, 1.0, prompt_tokens=100, cached_tokens=0, moved="waited")
    refused = Outcome("a", 503, 0.0, 0.1, error="overloaded", prompt_tokens=999)
    o = summarize([out, other, refused], slo_s=5.0)["overall"]
    assert o["prefix_hit_rate"] == 0.64  # 256 of 400 answered prompt tokens
    assert o["moved"] == {"reassigned": 1, "waited": 1}
    assert summarize([refused], slo_s=5.0)["overall"]["prefix_hit_rate"] is None


def test_a_context_mix_sends_its_document_as_an_earlier_turn():
    mix = ContextMix(["doc one", "doc two"], ["q?"], group="docs")
    prompts = {mix.sample(random.Random(s)).context for s in range(20)}
    assert prompts == {"doc one", "doc two"}
    prompt = mix.sample(random.Random(0))
    assert [m["role"] for m in prompt.messages()] == ["user", "assistant", "user"]
    assert prompt.messages()[-1]["content"] == "q?" and prompt.group == "docs"
    assert Prompt("g", "alone").messages() == [{"role": "user", "content": "alone"}]
    with pytest.raises(MixError):
        ContextMix([], ["q"])


def test_clients_retry_what_the_openai_sdks_retry():
    from loadgen.client import Outcome
    from loadgen.run import retryable

    def out(status: int, error: str = "", ttft: float | None = None) -> Outcome:
        return Outcome("g", status, 0.0, 1.0, ttft_s=ttft, error=error)

    assert retryable(out(0, "client_error: ConnectError"))
    assert retryable(out(500, "500")) and retryable(out(503, "overloaded"))
    assert retryable(out(429, "overloaded")) and retryable(out(200, "truncated"))
    assert not retryable(out(200, "truncated", ttft=0.1))  # text had come: not resent
    assert not retryable(out(0, "client_timeout")) and not retryable(out(400, "invalid"))
    assert not retryable(out(200))
