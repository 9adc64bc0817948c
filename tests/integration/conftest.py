"""Fixtures of the integration tier: one local Ray for the session, on which each service
is deployed in turn (``tests/helpers/shared_ray.py``); one service of the fake fleet
shared by the package's tests (tests that disrupt a service, by killing its Redis or
saturating a specialist, live in ``isolated/`` and get one each, deployed after the one
before has stopped); and a Redis server per test.

The order of the tier (``pytest_collection_modifyitems``): first the tests that need no
service (Redis alone); then those that start multi-node clusters of their own; then
``isolated/``; last the tests of the shared service. Within each group, the order of
collection. ``cli/`` (the CLI on real models, no service) runs in a pytest process of its
own beside all this under ``make test``; run alone, it comes first."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orchestrator.runtime import start_redis
from tests.helpers.fleet import fake_fleet
from tests.helpers.http import auth
from tests.helpers.shared_ray import SharedRay

# Modules that start clusters of their own (the shared Ray is released before them), in
# this order: test_cluster_faults connects this process to a cluster with Ray's token
# authentication (RAY_AUTH_MODE=token), and after it test_sharded_search's in-process
# `ray.init(address=...)` to a `ray.cluster_utils` cluster got its shard actors
# "cancelled before it started running" (4 failures, every time; seen here). What comes
# after it starts a local Ray of its own, which works as it did before.
MULTI_NODE = ("test_sharded_search.py", "test_cluster_ingest.py", "test_cluster_faults.py")
SERVICE_FIXTURES = {"service", "client"}


def tier_group(item: pytest.Item) -> tuple[int, int]:
    path = Path(str(item.fspath))
    if "integration" not in path.parts:
        return (0, 0)
    if path.name in MULTI_NODE:
        return (2, MULTI_NODE.index(path.name))
    if "isolated" in path.parts:
        return (3, 0)
    if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return (4, 0)
    return (1, 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=tier_group)  # stable: collection order within a group


@pytest.fixture(scope="session")
def shared_ray():
    ray = SharedRay()
    try:
        yield ray
    finally:
        ray.release()  # Ray shut down and its processes swept, as `mixserve down` does


@pytest.fixture(scope="package")
def service(tmp_path_factory, shared_ray):
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("router"), ray=shared_ray
    ) as run:
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
