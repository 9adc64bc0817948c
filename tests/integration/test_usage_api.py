"""The caller's usage over HTTP, and `mixserve costs` over the ledger's records."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import invoke_mixserve
from tests.helpers.http import chat


def costs_cli(service, *args):
    return invoke_mixserve("costs", *args, env={"REDIS_URL": service.redis_url})


def test_usage_shows_the_callers_own_spend_only(client):
    before = client.get("/v1/usage").json()
    cost = chat(client, "What is 5 + 6?", temperature=0.5).json()["usage"]["cost"]["total_usd"]
    after = client.get("/v1/usage").json()
    assert after["tenant"] == "tenant-a" and after["key"]["budget_usd"] is None
    assert after["requests"] == before["requests"] + 1
    assert after["total_usd"] - before["total_usd"] == pytest.approx(cost, abs=1e-8)
    assert after["today"]["total_usd"] >= cost and after["key"]["reserved_usd"] == 0
    assert client.get("/v1/usage", params={"tenant": "tenant-a"}).status_code == 200
    other = client.get("/v1/usage", params={"tenant": "someone-else"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_costs_command_groups_the_ledger_records(client, service):
    chat(client, "What is 8 + 1?", temperature=0.5)
    proc = costs_cli(service, "--by", "tenant", "--json", "--since", "2000-01-01")
    assert proc.returncode == 0, proc.stderr
    rows = {r["tenant"]: r for r in json.loads(proc.stdout)}
    assert rows["tenant-a"]["requests"] >= 1 and rows["tenant-a"]["cost_usd"] > 0
    by_specialist = json.loads(costs_cli(service, "--json", "--tenant", "tenant-a").stdout)
    assert sum(r["requests"] for r in by_specialist) == rows["tenant-a"]["requests"]
    future = costs_cli(service, "--json", "--since", "2999-01-01T00:00")
    assert future.returncode == 0 and json.loads(future.stdout) == []
    table = costs_cli(service, "--by", "day")
    assert table.returncode == 0 and "cost USD" in table.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "last tuesday"], "is not a date"),
        (["--by", "model"], "--by must be one of"),
        (["--tenant", "nobody-here"], "no tenant 'nobody-here'"),
        (["--tenant", "Bad Name"], "is not a tenant name"),
    ],
)
def test_costs_command_refuses_bad_input_in_one_line(service, args, message):
    proc = costs_cli(service, *args)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], proc.stderr
