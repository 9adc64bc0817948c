from __future__ import annotations

import dataclasses
import signal

import httpx
import pytest

from orchestrator.config import MixserveConfig, load_config
from orchestrator.redis_server import free_port
from orchestrator.settings import get_settings
from tests.conftest import ROOT, require_prepared_models

TOKEN_DELAY_S = 0.02
REQUEST_TIMEOUT_S = 6.0  # the fake needs 0.02 s a token: 1000 tokens overrun it


def fake_config() -> MixserveConfig:
    """The shipped CPU config with every specialist on the fake engine (router and
    retriever stay real)."""
    cfg = load_config(ROOT / "configs" / "cpu.yaml")
    specialists = [
        s.model_copy(
            update={
                "engine": "fake",
                "engine_kwargs": {"token_delay_s": TOKEN_DELAY_S},
                "engine_env": {},
            }
        )
        for s in cfg.specialists
    ]
    gateway = cfg.gateway.model_copy(update={"request_timeout_s": REQUEST_TIMEOUT_S})
    return cfg.model_copy(update={"specialists": specialists, "gateway": gateway})


def _sigterm_marker(_signum, _frame):
    raise KeyboardInterrupt


@pytest.fixture(scope="package")
def service(tmp_path_factory):
    from orchestrator.runtime import Deployment

    require_prepared_models()
    settings = dataclasses.replace(
        get_settings(), redis_url=None, ray_address=None, state_dir=tmp_path_factory.mktemp("state")
    )
    deployment = Deployment(
        fake_config(), settings, port=free_port(), state_file=settings.state_file
    )
    previous = signal.signal(signal.SIGTERM, _sigterm_marker)  # as `mixserve up` does
    try:
        deployment.start(ready_timeout_s=300)
        deployment.sigterm_after_start = signal.getsignal(signal.SIGTERM)  # type: ignore[attr-defined]
        yield deployment
    finally:
        signal.signal(signal.SIGTERM, previous)
        deployment.stop()


@pytest.fixture()
def client(service):
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c
