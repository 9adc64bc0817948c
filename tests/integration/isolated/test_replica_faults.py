"""A specialist replica SIGKILLed under steady streaming load costs no client request:
calls that lost it before their first token are sent again, answers cut mid-stream are
continued on the other replica from their text (each arrives whole: its token count is
the full answer's), and Serve replaces the replica.

The fake engine stands in for vLLM here (the test is about the gateway and Serve);
``tests/e2e/test_real_faults.py`` kills the real engine's replica."""

from __future__ import annotations

import os
import signal

import pytest
from ray import serve

from loadgen.run import LoadSpec
from tests.helpers.faults import WORDS, Load, long_questions, replica_pids, report, wait_for
from tests.helpers.fleet import both, fake_fleet, gateway_changed, specialist_changed

DEPLOYMENT = "specialist-code"


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_ray):
    two_replicas = both(
        gateway_changed(request_timeout_s=60.0),
        specialist_changed("code", replicas=2, max_ongoing_requests=8, max_queued_requests=16),
    )
    with fake_fleet(
        tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("r"), two_replicas, ray=shared_ray
    ) as run:
        yield run


def running_replicas(config_name: str) -> int:
    from orchestrator.app import engine_app

    app = serve.status().applications[engine_app(config_name, DEPLOYMENT)]
    status = app.deployments[DEPLOYMENT]
    return int(status.replica_states.get("RUNNING", 0))


def test_a_killed_specialist_replica_costs_no_request(service):
    before = wait_for("two code replicas", lambda: len(replica_pids(DEPLOYMENT)) == 2, 60)
    assert before
    victim_id, victim = sorted(replica_pids(DEPLOYMENT).items())[0]
    spec = LoadSpec(
        url=service.url,
        clients=8,
        duration_s=20,
        model="code",
        max_tokens=64,
        temperature=0.5,  # the response cache stays out of it
        timeout_s=60,
        api_key=service.api_key,
    )

    def replaced() -> bool:
        return (
            running_replicas(service.config.name) == 2
            and victim_id not in replica_pids(DEPLOYMENT)
            and len(replica_pids(DEPLOYMENT)) == 2
        )

    with Load(spec, long_questions("Write a Python function")) as load:
        load.wait_answered(16)  # under way: every client has had answers
        os.kill(victim, signal.SIGKILL)
        # on until the replica is replaced and 16 more requests have ended
        load.finish_when("the killed replica replaced", replaced, then=16)
        outcomes = load.outcomes()
    summary = report("specialist replica SIGKILL", outcomes)
    assert summary["failed"] == 0, summary
    assert summary["retried_by_service"] >= 1, summary  # its in-flight calls went on
    assert summary["retried_by_client"] == 0, summary
    # all whole, none cut or doubled: "[code]" and the words
    assert {o.output_tokens for o in outcomes} == {WORDS + 1}
    assert {o.specialist for o in outcomes} == {"code"}
    assert wait_for("the killed replica replaced", replaced, 180)
