"""An installed wheel works outside a source checkout: the shipped profiles and their
corpus are package data, so `mixserve config validate` of the default passes in a clean
venv that holds nothing of the checkout. The wheel carries none of the benchmark harness
(`harness/`, a distribution of its own), and `mixserve bench` without it says in one line
how to install it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.helpers.paths import ROOT


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_the_wheel_in_a_clean_venv_validates_its_default_config(tmp_path):
    source = tmp_path / "source"  # the tracked files only: no caches, no venv
    tracked = run("git", "ls-files", "-co", "--exclude-standard", cwd=ROOT).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-w", tmp_path / "dist", source, cwd=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("mixserve-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"orchestrator", "retrieval", "router_model", "specialists"} <= tops
    assert not tops & {"loadgen", "mixserve_bench", "harness", "benchmarks", "tests"}

    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv, cwd=tmp_path).returncode == 0
    installed = run(venv / "bin" / "pip", "install", "--no-deps", "--no-index", wheel,
                    cwd=tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    # the dependencies (not mixserve) come from the project's environment; its editable
    # install of the checkout is not seen (a path in a .pth file is no site directory)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    clean_site = Path(run(venv / "bin" / "python", "-c", purelib, cwd=tmp_path).stdout.strip())
    (clean_site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    imported = "import orchestrator; print(orchestrator.__file__)"
    where = run(venv / "bin" / "python", "-c", imported, cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout

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
