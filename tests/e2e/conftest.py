"""The real CPU profile, started the way users start it: the service's wheel installed
alone in a clean venv (``tests/helpers/wheel.py``: nothing of the checkout, nor the
benchmark harness), then `mixserve up` from it in a subprocess (local Ray, embedded
Redis, one vLLM engine serving Gemma 3 270M for the three specialists, the real router
and retriever), stopped with `mixserve down`, after which no process of the run may
remain.

Two changes to the `cpu` profile: its price list, token prices in place of its
replica-hour prices (general < math < code), so a cascade has a cheaper specialist to
try first (nothing else depends on prices while the quality/cost trade-off stays at its
default of 0); and a second collection, built at start, holding one planted fact."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import httpx
import pytest
import yaml

from orchestrator.runtime.embedded_redis import free_port
from orchestrator.runtime.procs import pids_of_run
from tests.helpers.cli import require_prepared_models
from tests.helpers.paths import ROOT
from tests.helpers.wheel import build_wheel_venv

READY_TIMEOUT_S = 900
PRICES = {"general": 0.5, "math": 2.0, "code": 5.0}  # USD per million tokens, in and out


PLANTED_FACT = "The lighthouse of Vellmar was rebuilt in 1911 by the engineer Greta Holm."
PLANTED_QUESTION = "Who rebuilt the lighthouse of Vellmar?"


def planted_folder(folder):
    """mixserve's architecture notes with one made-up fact inserted at a paragraph break
    half way in: a second collection the service builds at start."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    at = text.index("\n\n", len(text) // 2)
    planted = folder / "planted"
    planted.mkdir()
    (planted / "architecture.md").write_text(f"{text[:at]}\n\n{PLANTED_FACT}{text[at:]}")
    return planted


def priced_config(folder, profiles):
    """The ``cpu`` profile of ``profiles`` (the installed package's folder), priced."""
    data = yaml.safe_load((profiles / "cpu.yaml").read_text())
    data["base_dir"] = str(profiles)
    data["retrieval"]["collections"].append(  # its own deployment, its index in two shards
        {
            "name": "planted",
            "paths": [str(planted_folder(folder))],
            "index": "flat",
            "shards": 2,
            "shard_resources": {"num_cpus": 0.1},
        }
    )
    for spec in data["specialists"]:
        price = PRICES[spec["name"]]
        spec["price"] = {"usd_per_mtok_in": price, "usd_per_mtok_out": price}
    for engine in data["engines"]:  # specialists cost their token prices alone
        engine["price"] = {"usd_per_replica_hour": 0.0}
    path = folder / "cpu-priced.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="package")
def live(tmp_path_factory):
    require_prepared_models()
    wheel = build_wheel_venv(tmp_path_factory.mktemp("wheel"))
    profiles = wheel.where("orchestrator.profiles").parent
    state = tmp_path_factory.mktemp("state")
    log_path = state / "up.log"
    run_id = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RAY_ADDRESS")}
    env.update({"MIXSERVE_RUN_ID": run_id, "MIXSERVE_STATE_DIR": str(state)})
    port = free_port()
    cli = [str(wheel.mixserve)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*cli, "up", "--port", str(port), "--config", str(priced_config(state, profiles))],
            cwd=state,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"mixserve up exited {proc.returncode}:\n{log_path.read_text()[-4000:]}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready in {READY_TIMEOUT_S}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield {
            "url": url, "env": env, "cli": cli, "run_id": run_id, "state": state,
            "venv": wheel.venv,
        }  # fmt: skip
    finally:
        down = subprocess.run(
            [*cli, "down"], cwd=state, env=env, capture_output=True, text=True, timeout=300
        )
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        leftovers = pids_of_run(run_id)
        if leftovers:  # never leave gigabytes of engine processes behind a test run
            subprocess.run(["kill", "-9", *map(str, leftovers)], check=False)
        assert down.returncode == 0, down.stderr
        # 0 means `up` took the graceful path: Serve shut down, engines stopped themselves
        assert proc.returncode == 0, f"up exited {proc.returncode}:\n{log_path.read_text()[-3000:]}"
        assert leftovers == [], f"processes of run {run_id} survived 'mixserve down'"


@pytest.fixture()
def client(live):
    with httpx.Client(base_url=live["url"], timeout=300) as c:
        yield c
