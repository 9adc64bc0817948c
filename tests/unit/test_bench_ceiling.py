"""`mixserve bench ceiling`: the profile's engines all on the fake (at the token delay and
answer length asked, everything else as the profile has it), its refusals of bad input
before anything starts, and the summary's figures from the rounds' reports."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mixserve_bench.cli.ceiling import fake_fleet, summary
from orchestrator import profiles
from orchestrator.cli.main import app
from orchestrator.config import load_config


def test_every_engine_runs_the_fake_and_the_rest_stays_as_the_profile_has_it():
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    fleet = fake_fleet(cfg, 0.0005, 64, 0)
    for spec in fleet.specialists:
        assert spec.backend == "fake"
        assert spec.engine_kwargs == {"token_delay_s": 0.0005, "answer_tokens": 64}
        assert spec.stream_batch_ms == 0
    assert fleet.engine_deployments().keys() == cfg.engine_deployments().keys()
    assert fleet.router == cfg.router and fleet.retrieval == cfg.retrieval
    assert fleet.tracing == cfg.tracing and fleet.cache == cfg.cache
    kept = fake_fleet(cfg, 0.0005, 64, None)
    assert kept.specialists[0].stream_batch_ms == cfg.specialists[0].stream_batch_ms


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token-delay-ms", "-1"], "--token-delay-ms must be 0 or more"),
        (["--answer-tokens", "5000"], "above the gateway's max_tokens_limit"),
        (["--config", "/nonexistent.yaml"], "nonexistent"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(args, message):
    result = CliRunner().invoke(app, ["bench", "ceiling", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def report(rps, gateway, router, loadgen, p50, refused=0):
    cpu = {"gateway": gateway, "router": router, "loadgen": loadgen}
    cpu["service"] = gateway + router
    return {
        "requests_per_s": rps,
        "cpu_ms_per_request": cpu,
        "added_latency_ms": {"p50": p50, "p99": p50 * 2},
        "added_ttft_ms": {"p50": p50 / 2, "p99": p50},
        "overall": {"refused": refused, "count_5xx": 0},
    }


def test_the_summary_takes_the_median_of_rounds_and_what_two_cores_allow():
    results = {
        "pinned": [report(100, 5.0, 0.0, 2.0, 10.0), report(120, 3.0, 0.0, 2.0, 30.0),
                   report(110, 4.0, 0.0, 2.0, 20.0, refused=3)],
        "routed": [report(40, 6.0, 14.0, 2.0, 50.0)],
    }  # fmt: skip
    out = summary(results, 0.0005)
    assert out["pinned_rps"] == 110
    assert out["pinned_cpu_ms_per_request"] == {"gateway": 4.0, "router": 0.0, "loadgen": 2.0,
                                                "service": 4.0}  # fmt: skip
    assert out["pinned_capacity_rps_per_2_cores"] == 500.0  # 2,000 ms of CPU a second / 4 ms
    assert out["pinned_added_latency_ms"] == {"p50": 20.0, "p99": 40.0}
    assert out["pinned_refused"] == 3
    assert out["routed_cpu_ms_per_request"]["router"] == 14.0
    assert out["routed_capacity_rps_per_2_cores"] == 100.0
