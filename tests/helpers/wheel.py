"""The service as a user installs it: its wheel, built from the checkout's tracked files,
installed alone in a clean venv that holds nothing of the checkout. The dependencies
(Ray, vLLM, torch ... not mixserve) come from the project's environment through a plain
path in a ``.pth`` file: its editable installs of the checkout and of the harness are not
seen (a path in a ``.pth`` file is no site directory, so their hooks never run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.paths import ROOT


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@dataclass(frozen=True)
class WheelVenv:
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def mixserve(self) -> Path:
        return self.venv / "bin" / "mixserve"

    def where(self, module: str) -> Path:
        """The file ``module`` imports from in the venv (run outside the checkout)."""
        code = f"import {module}; print({module}.__file__)"
        found = run(self.python, "-c", code, cwd=self.venv)
        assert found.returncode == 0, found.stderr[-2000:]
        return Path(found.stdout.strip())


def build_wheel_venv(folder: Path) -> WheelVenv:
    source = folder / "source"  # the tracked files only: no caches, no venv
    tracked = run("git", "ls-files", "-co", "--exclude-standard", cwd=ROOT).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-w", folder / "dist", source, cwd=folder)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (folder / "dist").glob("mixserve-*.whl")

    venv = folder / "venv"
    assert run(sys.executable, "-m", "venv", venv, cwd=folder).returncode == 0
    installed = run(venv / "bin" / "pip", "install", "--no-deps", "--no-index", wheel,
                    cwd=folder)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    clean_site = Path(run(venv / "bin" / "python", "-c", purelib, cwd=folder).stdout.strip())
    (clean_site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    made = WheelVenv(wheel, venv)
    assert made.where("orchestrator").is_relative_to(venv)
    return made
