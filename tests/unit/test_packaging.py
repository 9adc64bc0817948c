"""An installed wheel works outside a source checkout: the shipped profiles and their
corpus are package data, so `mixserve config validate` of the default passes in a clean
venv that holds nothing of the checkout. The wheel carries none of the benchmark harness
(`harness/`, a distribution of its own), and `mixserve bench` without it says in one line
how to install it; installed as that line says, it adds the command."""

from __future__ import annotations

import sys
import zipfile

from tests.helpers.wheel import build_wheel_venv, run


def test_the_wheel_in_a_clean_venv_validates_its_default_config(tmp_path):
    made = build_wheel_venv(tmp_path)
    wheel, venv = made.wheel, made.venv
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"orchestrator", "retrieval", "router_model", "specialists"} <= tops
    assert not tops & {"loadgen", "mixserve_bench", "harness", "benchmarks", "tests"}

    default = run(venv / "bin" / "mixserve", "config", "validate", cwd=tmp_path)
    assert default.returncode == 0, default.stderr[-2000:]
    assert "ok (3 specialists: general, code, math)" in default.stdout
    assert str(venv) in default.stdout  # the profile inside the installed package
    gpu = run(venv / "bin" / "mixserve", "config", "validate", "gpu", cwd=tmp_path)
    assert gpu.returncode == 0, gpu.stderr[-2000:]
    missing = run(venv / "bin" / "mixserve", "config", "validate", "nosuch", cwd=tmp_path)
    assert missing.returncode == 1 and "cannot read" in missing.stderr

    # the harness is not in the wheel: `bench` is one line saying how to install it
    assert run(venv / "bin" / "python", "-c", "import loadgen", cwd=tmp_path).returncode == 1
    bench = run(venv / "bin" / "mixserve", "bench", "ceiling", "--rounds", "1", cwd=tmp_path)
    assert bench.returncode == 1 and bench.stdout == ""
    [line] = bench.stderr.splitlines()
    assert line.startswith("error: mixserve bench: the benchmark harness") and line.endswith(
        "install it with: pip install ./harness (from a mixserve checkout; `make setup` does it)"
    ), line

    # installed as the line says (its wheel, built from the checkout's harness/), `bench` works
    source = tmp_path / "source" / "harness"
    harness = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-w", tmp_path / "dist", source, cwd=tmp_path)  # fmt: skip
    assert harness.returncode == 0, harness.stderr[-2000:]
    [bench_wheel] = (tmp_path / "dist").glob("mixserve_bench-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(bench_wheel).namelist()}
    assert {"loadgen", "mixserve_bench"} <= tops and not tops & {"orchestrator", "retrieval"}
    added = run(venv / "bin" / "pip", "install", "--no-deps", "--no-index", bench_wheel,
                cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stderr[-2000:]
    assert made.where("mixserve_bench").is_relative_to(venv)
    listed = run(venv / "bin" / "mixserve", "bench", "--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert all(c in listed.stdout for c in ("overhead", "ceiling", "skew", "retrieval"))
