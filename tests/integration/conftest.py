"""Fixtures of the integration tier: one service of the fake fleet shared by the whole
package (tests that disrupt a service, by killing its Redis or saturating a specialist,
live in ``isolated/`` and get one each), and a Redis server per test."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.runtime import start_redis
from tests.helpers.fleet import fake_fleet
from tests.helpers.http import auth


@pytest.fixture(scope="package")
def service(tmp_path_factory):
    with fake_fleet(tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("router")) as run:
        yield run


@pytest.fixture()
def client(service):
    with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
        yield c


@pytest.fixture()
def redis_server(tmp_path):
    """A real Redis server of the test's own (started here, stopped after)."""
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
