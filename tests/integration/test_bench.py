"""`mixserve bench` against the running service (fake engines): a closed-loop and an
open-loop load with their reports, and a sweep with its plot. Light, short and bounded:
the shared service is not disturbed."""

from __future__ import annotations

import json

from tests.helpers.cli import invoke_mixserve
from tests.helpers.paths import SHARED_DATA


def bench(*args: str) -> dict:
    proc = invoke_mixserve("bench", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_closed_loop_load_reports_per_group_and_specialist(service):
    mix = [f"math={SHARED_DATA / 'routerdc' / 'gsm8k_train.jsonl'}",
           f"code={SHARED_DATA / 'routerdc' / 'humaneval_train.jsonl'}"]  # fmt: skip
    report = bench("run", "--url", service.url, "--api-key", service.api_key, "--clients", "4",
                   "--duration", "8", "--max-tokens", "8", "--mix", *mix, "--skew", "math=0.75",
                   "--json")  # fmt: skip
    overall = report["overall"]
    assert overall["answered"] >= 8 and overall["count_5xx"] == 0, overall
    assert overall["output_tokens_per_s"] > 0 and overall["ttft_ms"]["p50"] is not None
    assert set(report["by_group"]) == {"math", "code"}
    groups = report["by_group"]
    assert groups["math"]["requests"] > groups["code"]["requests"]  # the skew
    assert set(report["by_specialist"]) <= {"general", "code", "math"}
    assert report["load"]["clients"] == 4 and "api_key" not in report["load"]


def test_an_open_loop_sweep_writes_reports_and_a_plot(service, tmp_path):
    plot, out = tmp_path / "sweep.png", tmp_path / "sweep.json"
    reports = bench("sweep", "--url", service.url, "--api-key", service.api_key,
                    "--rates", "2", "4", "--duration", "3", "--max-tokens", "4",
                    "--plot", str(plot), "--out", str(out), "--json")  # fmt: skip
    assert [r["offered"] for r in reports] == [2.0, 4.0]
    assert all(r["overall"]["count_5xx"] == 0 and r["overall"]["answered"] > 0 for r in reports)
    assert json.loads(out.read_text()) == reports
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_refuses_what_it_cannot_do_in_one_line(service):
    remote = invoke_mixserve("bench", "run", "--url", "http://10.0.0.5:8000", "--duration", "1")
    assert remote.returncode == 1 and "not on this machine" in remote.stderr
    both = invoke_mixserve("bench", "sweep", "--url", service.url)
    assert both.returncode == 1 and "give --clients" in both.stderr
    skew = invoke_mixserve("bench", "run", "--url", service.url, "--skew", "nope=0.5")
    assert skew.returncode == 1 and "no group 'nope'" in skew.stderr


def test_a_probe_beside_a_load_times_each_of_its_answers(service):
    from loadgen.probe import Probe

    result = Probe(service.url, 2.0, interval_s=0.1, api_key=service.api_key).start().result()
    assert result["statuses"] == [200]  # nothing refused: the shared service is not full
    assert result["refused"]["count"] == 0 and result["refused"]["p99"] is None
    assert result["other"]["count"] >= 3 and result["other"]["p50"] > 0


def test_a_load_told_to_stop_sends_nothing_after_and_ends_long_before_its_duration(service):
    """What the fault tests' ``finish_when`` relies on: ``run_load``'s ``stop``."""
    import time

    from loadgen.run import LoadSpec
    from tests.helpers.faults import Load, long_questions

    spec = LoadSpec(
        url=service.url, clients=3, duration_s=120, model="general", max_tokens=8,
        temperature=0.5, timeout_s=30, api_key=service.api_key,
    )  # fmt: skip
    started = time.monotonic()
    with Load(spec, long_questions("Say")) as load:
        load.wait_answered(3)
        load.finish_after(3)
        outcomes = load.outcomes()
    assert load.stopped_at is not None
    assert time.monotonic() - started < 60  # not the 120 s it was given
    assert len(outcomes) >= 6 and all(o.answered for o in outcomes)
    # nothing was sent after the stop (times from the load's start, which is a little
    # after ``started``: a request sent after the stop would start later than this)
    stopped_s = load.stopped_at - started
    late = [o for o in outcomes if o.started > stopped_s]
    assert late == [], late
