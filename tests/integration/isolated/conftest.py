"""Tests that disrupt the service they run against (SIGKILL its Redis, saturate a
specialist) get a service of their own, one per module, never the shared one.

They run before the shared service starts (pytest collects ``isolated/`` before the
``test_*.py`` files beside it); one Serve application per Ray cluster is all a process
can hold, so this fixture refuses to start while another service is up."""

from __future__ import annotations

import pytest

from tests.helpers.fleet import fake_fleet


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    import ray

    if ray.is_initialized():
        pytest.fail(
            "another service is running in this process: run tests/integration/isolated "
            "first or on its own (pytest orders it first when given tests/integration)"
        )
    with fake_fleet(tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("router")) as run:
        yield run
