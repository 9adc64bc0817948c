"""``mixserve bench skew``'s set-up and summary: the hot specialist on an engine of its
own, the mix of the two specialists' own questions, and ratios taken within rounds."""

from __future__ import annotations

import pytest

from mixserve_bench.cli.autoscale import autoscale_config, autoscale_summary
from mixserve_bench.cli.replicas import documents, replica_summary, replicas_config
from mixserve_bench.cli.skew import _skew_summary, skew_config, skew_mix
from orchestrator import profiles
from orchestrator.config import load_config


def test_the_hot_specialist_gets_an_engine_of_its_own():
    cfg = skew_config(load_config(profiles.FOLDER / "cpu.yaml"), "code", slots=3, queue=9)
    groups = {k: [s.name for s in v] for k, v in cfg.engine_deployments().items()}
    assert groups == {"engine-rest": ["general", "math"], "specialist-code": ["code"]}
    assert {(s.max_ongoing_requests, s.max_queued_requests, s.replicas)
            for s in cfg.specialists} == {(3, 9, 1)}  # fmt: skip
    spill = cfg.policy.spill
    assert spill.enabled and spill.joint_assignment and spill.max_utility_loss is None
    mix = skew_mix(cfg, "code", "general")
    assert mix.weights == {"code": 0.5, "general": 0.5}
    assert mix.groups["code"] == cfg.specialist("code").examples
    assert mix.skewed("code", 0.8).weights["code"] == pytest.approx(0.8)


def report(p99, refused=0):
    return {"overall": {"latency_ms": {"p99": p99}, "refused": refused, "count_5xx": 0}}


def test_the_summary_is_the_median_of_ratios_within_rounds():
    results = {
        "uniform": [report(1000), report(2000), report(1000)],
        "skew": [report(1100), report(2000), report(1500)],
        "skew_off": [report(4400), report(3000), report(6000, refused=2)],
    }
    summary = _skew_summary(results)
    assert summary["p99_ratio_vs_uniform"] == 1.1  # of 1.1, 1.0 and 1.5
    assert summary["p99_gain_vs_no_balancing"] == 4.0  # of 4.0, 1.5 and 4.0
    assert summary["refused_or_failed"] == {"uniform": 0, "skew": 0, "skew_off": 2}


def test_the_replica_part_runs_two_real_replicas_beside_a_fake_rest():
    base = load_config(profiles.FOLDER / "cpu.yaml")
    cfg = replicas_config(base, "code", "prefix_cache_affinity")
    code = cfg.specialist("code")
    assert (code.replicas, code.routing.policy, code.backend, code.engine) == (
        2, "prefix_cache_affinity", "vllm", None,
    )  # fmt: skip
    assert {s.backend for s in cfg.specialists if s.name != "code"} == {"fake"}
    docs = documents(3, 5, 40)
    assert len(set(docs)) == 5 and docs == documents(3, 5, 40) != documents(4, 5, 40)
    assert all(len(d.split()) == 42 for d in docs)  # title and 40 words
    assert len({d.split(":")[0] for d in docs}) == 5  # no two open alike


def replica_report(ttft_p99, tok_s, hits):
    return {"overall": {"ttft_ms": {"p99": ttft_p99}, "output_tokens_per_s": tok_s,
                        "prefix_hit_rate": hits}}  # fmt: skip


def test_the_replica_summary_compares_ours_with_each_of_rays_within_rounds():
    results = {
        "engine_load": [replica_report(500, 120, 0.8), replica_report(600, 100, 0.7)],
        "power_of_two": [replica_report(1000, 100, 0.5), replica_report(600, 100, 0.4)],
        "prefix_cache_affinity": [replica_report(500, 60, 0.8), replica_report(None, 0, None)],
    }
    summary = replica_summary(results)
    assert summary["prefix_hit_rate"] == 0.75
    assert summary["vs_ray_default"] == {
        "ttft_p99_ratio": 0.75, "throughput_ratio": 1.1, "their_prefix_hit_rate": 0.45,
    }  # fmt: skip
    # a round in which theirs answered nothing gives no ratio: only the other counts
    assert summary["vs_ray_prefix"] == {
        "ttft_p99_ratio": 1.0, "throughput_ratio": 2.0, "their_prefix_hit_rate": 0.8,
    }  # fmt: skip


def test_the_autoscale_part_scales_one_real_engine_from_one_replica_to_two():
    base = load_config(profiles.FOLDER / "cpu.yaml")
    on = autoscale_config(base, "code", slots=4, autoscale=True).specialist("code")
    off = autoscale_config(base, "code", slots=4, autoscale=False).specialist("code")
    assert on.autoscaling is not None and off.autoscaling is None
    assert (on.autoscaling.min_replicas, on.autoscaling.max_replicas) == (1, 2)
    assert on.autoscaling.target_ongoing_requests == 2.0 and on.replicas == off.replicas == 1
    assert on.backend == "vllm" and on.engine_env["OMP_NUM_THREADS"] == "1"
    step = {"overall": {"latency_ms": {"p99": 3000.0}, "output_tokens_per_s": 50.0},
            "second_replica_after_s": 41.0}  # fmt: skip
    flat = {"overall": {"latency_ms": {"p99": 6000.0}, "output_tokens_per_s": 30.0},
            "second_replica_after_s": None}  # fmt: skip
    summary = autoscale_summary({"autoscaling_on": step, "autoscaling_off": flat})
    assert summary["step_p99_ratio_on_vs_off"] == 0.5
    assert summary["second_replica_after_s"] == 41.0
    assert summary["step_tokens_per_s"] == {"on": 50.0, "off": 30.0}


def test_the_plot_draws_a_panel_for_each_part_present(tmp_path):
    from loadgen.plots import plot_balance

    def full(p99, ttft, hits):
        return {"overall": {"latency_ms": {"p99": p99}, "ttft_ms": {"p99": ttft},
                            "prefix_hit_rate": hits}}  # fmt: skip

    rounds = {
        "uniform": [full(1000, 100, None)] * 2,
        "skew": [full(1100, 100, None)] * 2,
        "skew_off": [full(4000, 900, None)] * 2,
        "replicas_engine_load": [full(900, 300, 0.8)],
        "replicas_power_of_two": [full(900, 400, 0.5)],
        "autoscaling_on": [{**full(3000, 0, None), "replicas_seen": [(1.0, 1), (9.0, 2)]}],
    }
    path = plot_balance(rounds, tmp_path / "balance.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    small = plot_balance({"uniform": rounds["uniform"]}, tmp_path / "one.png", "one")
    assert small.stat().st_size < path.stat().st_size  # one panel, not three
