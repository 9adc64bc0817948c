"""Redis SIGKILLed under load, then started again: requests keep being served, and the
ledger ends up with every answered request exactly once (spooled meanwhile on disk)."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from orchestrator.ledger import NANO, PREFIX
from orchestrator.redis_server import start_redis
from tests.integration.conftest import auth

REQUESTS = 40
OUTAGE_S = 4.0


def tenant_spend(client) -> int:
    return int(client.hget(f"{PREFIX}spend:tenant:tenant-a", "total") or 0)


def test_sigkilled_redis_loses_no_record_and_counts_none_twice(service):
    sync = redis.Redis.from_url(service.redis_url, socket_timeout=2)
    before = tenant_spend(sync)
    killed = threading.Event()

    def ask(i):
        if i == 8:  # a fifth of the way in: kill Redis, mid-load
            os.kill(service.redis.pid, signal.SIGKILL)
            killed.set()
        rid = f"outage-{i}-{time.time_ns()}"
        headers = {**auth(service), "x-request-id": rid}
        body = {
            "model": "auto",
            "temperature": 0.5,
            "messages": [{"role": "user", "content": f"What is {i} plus {i}?"}],
        }
        with httpx.Client(base_url=service.url, timeout=60, headers=headers) as c:
            resp = c.post("/v1/chat/completions", json=body)
        time.sleep(0.1)
        return rid, resp

    spooled: list[int] = []

    def restart_after_outage():
        killed.wait(60)
        service.redis.process.wait(10)
        time.sleep(OUTAGE_S)
        folder = service.settings.cache_dir / "spool" / "mixserve"
        spooled.append(sum(len(p.read_text().splitlines()) for p in folder.glob("spool-*")))
        port = int(service.redis_url.rsplit(":", 1)[1].split("/")[0])
        data = service.settings.cache_dir / "redis" / service.run_id
        service.redis = start_redis(data, port=port)  # the AOF brings back what it had

    restarter = threading.Thread(target=restart_after_outage)
    restarter.start()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, range(REQUESTS)))
    restarter.join(60)
    assert spooled and spooled[0] > 0, "no settlement waited on disk during the outage"
    statuses = [resp.status_code for _, resp in results]
    assert statuses == [200] * REQUESTS, [r.text for _, r in results if r.status_code != 200][:3]
    costs = {rid: resp.json()["usage"]["cost"]["total_usd"] for rid, resp in results}

    deadline = time.monotonic() + 30  # the spool drains once Redis answers again
    while True:
        seen: dict[str, int] = {}
        for _, fields in sync.xrange(f"{PREFIX}records"):
            rid = fields[b"request_id"].decode()
            if rid in costs:
                seen[rid] = seen.get(rid, 0) + 1
        if len(seen) == REQUESTS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(seen) == set(costs), f"lost: {sorted(set(costs) - set(seen))[:5]}"
    assert set(seen.values()) == {1}, "a record was counted twice"
    spent = (tenant_spend(sync) - before) / NANO
    assert spent == pytest.approx(sum(costs.values()), abs=1e-6)
    sync.close()
