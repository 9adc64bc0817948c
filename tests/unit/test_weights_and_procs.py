import hashlib
import json
import os
import subprocess
import sys

import pytest

from orchestrator.runtime.procs import alive, pids_of_run, stop_run
from orchestrator.settings import RUN_MARKER_VAR as MARKER_VAR
from weights.prepare import MANIFEST, ModelPrepareError, verify_model_dir


def test_verify_model_dir_detects_a_changed_file(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    (tmp_path / MANIFEST).write_text(json.dumps({"files": {"w.bin": digest}}))
    assert verify_model_dir(tmp_path)["files"] == {"w.bin": digest}
    (tmp_path / "w.bin").write_bytes(b"weightz")
    with pytest.raises(ModelPrepareError, match="corrupt"):
        verify_model_dir(tmp_path)


def test_verify_model_dir_without_manifest(tmp_path):
    with pytest.raises(ModelPrepareError, match="models prepare"):
        verify_model_dir(tmp_path)


def test_processes_of_a_run_are_found_and_stopped_by_marker():
    env = {**os.environ, MARKER_VAR: "unit-test-run"}
    # each says it is up once Python runs: a process read in the middle of its exec shows
    # no environment yet (it raced the sweep here once, on a busy machine)
    code = "import time; print('up', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and other.stdout is not None
        assert child.stdout.readline() == other.stdout.readline() == b"up\n"
        assert pids_of_run("unit-test-run") == [child.pid]
        stopped = stop_run("unit-test-run", timeout_s=5)
        assert len(stopped) == 1 and stopped[0].startswith(f"{child.pid} ")
        assert "-c import time" in stopped[0]  # its command line, cut short
        child.wait(5)
        assert not alive(child.pid)
        assert other.poll() is None  # an unmarked process is left alone
    finally:
        for proc in (child, other):
            proc.kill()
            proc.wait()


def test_the_sweep_spares_the_calling_process_and_its_ancestors():
    # a marked parent runs a marked child that sweeps the run from inside: neither the
    # sweeper nor the parent waiting on it may be in the list (`mixserve down` case)
    inner = "from orchestrator.runtime import pids_of_run; print(pids_of_run('self-run'))"
    outer = (
        "import os, subprocess, sys; "
        f"r = subprocess.run([sys.executable, '-c', {inner!r}], capture_output=True, text=True); "
        "print(os.getpid(), r.stdout.strip(), r.stderr)"
    )
    env = {**os.environ, MARKER_VAR: "self-run"}
    out = subprocess.run([sys.executable, "-c", outer], env=env, capture_output=True, text=True)
    parent, found = out.stdout.split(" ", 1)
    assert found.strip() == "[]", (out.stdout, out.stderr)
    assert parent.isdigit()
