"""Tests that disrupt the service they run against (SIGKILL its Redis, saturate a
specialist) get a service of their own, one per module, never the shared one: deployed on
the session's Ray after the service before it has stopped (``SharedRay`` refuses two at
once), and stopped at the module's end. Modules that start multi-node clusters release
the session's Ray first."""

from __future__ import annotations

import pytest

from tests.helpers.fleet import fake_fleet


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("router"), ray=shared_ray
    ) as run:
        yield run
