"""Every private name of Ray that mixserve uses, in one place.

Ray Serve's public API does not yet cover five things the service needs; each is reached
here and nowhere else, so a Ray upgrade that moves one breaks this module and its
contract test (``tests/unit/test_ray_compat.py``, on the pinned Ray), not the service at
run time:

- ``build_app``: ``serve build``'s first step, which ``mixserve deploy`` runs to write a
  Serve config whose deployments Serve's own schema states
  (``ray.serve._private.build_app``);
- ``POWER_OF_TWO_ROUTER``: Serve's default request router, by import path, for
  ``routing.policy: power_of_two`` (``ray.serve._private.request_router``);
- ``on_this_transport``: a handle bound in the driver, set to call as this replica's Serve
  mode does (``RAY_SERVE_USE_GRPC_BY_DEFAULT`` and ``handle.options(_by_reference=...)``);
- ``MatchPendingById``: the request router hook that hands a chosen replica to the
  request it was chosen for (``FIFOMixin._get_pending_request_matching_metadata``);
- ``queued_on``: the request router's live count of a replica's requests
  (``RequestRouter._replica_queue_len_cache``).

Imports of Ray stay inside the functions: the config and the CLI import this module
without loading Serve.
"""

from __future__ import annotations

from typing import Any

RAY_VERSION = "2.60.0"  # the version these names were checked against (pyproject's pin)

POWER_OF_TWO_ROUTER = "ray.serve._private.request_router:PowerOfTwoChoicesRequestRouter"


def build_app(app: Any, name: str) -> Any:
    """``app`` built as ``serve build`` builds it: its ``.deployments`` with their options."""
    from ray.serve._private.build_app import build_app as build

    return build(app, name=name)


def grpc_by_default() -> bool:
    """Whether this process's Serve calls replicas over gRPC (its high-throughput mode)."""
    from ray.serve._private.constants import RAY_SERVE_USE_GRPC_BY_DEFAULT

    return bool(RAY_SERVE_USE_GRPC_BY_DEFAULT)


def on_this_transport(handle: Any) -> Any:
    """The handle, calling as this process's Serve mode does. A handle bound in the driver
    keeps the driver's default transport (Ray object references), even on a cluster that
    runs Serve's gRPC data plane (``RAY_SERVE_THROUGHPUT_OPTIMIZED``) when the driver had
    imported Serve before that was set; the replica's own setting decides here."""
    if handle is None:
        return None
    return handle.options(_by_reference=not grpc_by_default())


class MatchPendingById:
    """A request router mixin, placed before ``FIFOMixin``: a replica chosen for a waiting
    request goes to that request (matched by its internal id), not to the oldest waiting
    one. Without it, Ray 2.60 left concurrent requests unrouted when a routing task's
    choice depended on its request (measured: four at once never returned)."""

    def _get_pending_request_matching_metadata(self, request_metadata: Any = None) -> Any:
        return self._get_pending_request_matching_internal_request_id(request_metadata)  # type: ignore[attr-defined]


def queued_on(router: Any, replica_id: Any) -> int | None:
    """The requests Serve's request router knows ``replica_id`` holds (updated as requests
    are sent to it), or None before it first knows."""
    count: int | None = router._replica_queue_len_cache.get(replica_id)
    return count
