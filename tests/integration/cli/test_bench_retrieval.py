"""`mixserve bench retrieval` end to end at a small scale, on a folder of real documents
(mixserve's own README and user guide): it prints the target figures as one JSON line,
and a sharded search that is identical to the whole index's."""

from __future__ import annotations

import json
import shutil

import pytest

from orchestrator import profiles
from tests.helpers.cli import invoke_mixserve, run_mixserve
from tests.helpers.paths import ROOT

KEYS = {
    "n_vectors", "recall_at_10", "p50_ms", "bytes_per_vector", "ingest_chunks_per_s",
    "grounding_top5", "sharded_identical",
}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    # about the size it was before the README moved its measurements to docs/
    for f in [
        ROOT / "README.md",
        *(ROOT / "docs" / n for n in ("architecture.md", "benchmarks.md")),
    ]:
        shutil.copy(f, folder / f.name)
    shutil.copytree(profiles.FOLDER / "corpus", folder / "guide")
    return folder


def test_bench_retrieval_prints_the_target_figures(corpus, tmp_path):
    report = tmp_path / "retrieval.json"
    proc = run_mixserve(
        "bench", "retrieval", "--corpus", str(corpus), "--n", "3000", "--real", "300",
        "--queries", "40", "--kinds", "flat,hnsw,ivfpq", "--shards", "2",
        "--ingest-chunks", "48", "--ingest-files", "2", "--facts", "3",
        "--json", "--out", str(report),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert KEYS <= set(summary)
    assert summary["n_vectors"] == 3000
    assert summary["sharded_identical"] == 1.0
    assert 0 < summary["recall_at_10"] <= 1 and summary["p50_ms"] > 0
    assert summary["ingest_chunks_per_s"] > 0 and 0 <= summary["grounding_top5"] <= 1
    assert report.with_suffix(".png").stat().st_size > 10_000  # the curves, drawn
    full = json.loads(report.read_text())
    assert full["summary"] == summary
    assert {r["kind"] for r in full["scale"]["indexes"]} == {"flat", "hnsw", "ivfpq"}
    flat = next(r for r in full["scale"]["indexes"] if r["kind"] == "flat")
    assert flat["curve"][0]["recall_at_10"] == 1.0  # exact search is its own ground truth
    assert full["ingest"]["cosine_int8_fp32"]["min"] > 0.95


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kinds", "flat,annoy"], "--kinds takes flat, hnsw and ivfpq"),
        (["--corpus", "/nonexistent/folder"], "not a folder"),
        (["--shards", "-1"], "--shards takes 0 to 64"),
    ],
)
def test_bench_retrieval_refuses_bad_options_in_one_line(args, message):
    proc = invoke_mixserve("bench", "retrieval", *args)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
