"""Budgets through HTTP: 200 concurrent requests against one key's budget, and client
request ids that repeat."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.helpers.fleet import key_store, ledger


def spend_of(service, key_id: str):
    return ledger(service).spend("key", key_id)


def test_200_concurrent_requests_never_spend_past_the_budget(service):
    # general is pinned: a request's maximum cost is its tokens at list price plus its
    # engine's, the router's and the retriever's replica price over the whole deadline
    # (about $0.72 here), so $2 holds 2 requests in flight; each settles far below it
    budget = 2.0
    key, record = key_store(service).create("burst", budget_usd=budget)
    headers = {"authorization": f"Bearer {key}"}
    body = {
        "model": "general",
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 3,
        "temperature": 0.5,
    }

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=service.url, headers=headers, timeout=120, limits=limits
        ) as c:
            return await asyncio.gather(
                *(c.post("/v1/chat/completions", json=body) for _ in range(200))
            )

    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    answered = [r.json() for r in responses if r.status_code == 200]
    # past the gateway's admission limit a request is refused before anything is charged
    assert set(statuses) <= {200, 402, 429}, [r.text for r in responses if r.status_code >= 500][:3]
    assert all(r.json()["error"]["code"] == "overloaded" for r in responses if r.status_code == 429)
    assert answered and statuses.count(402) > 0  # the budget did bind
    refusal = next(r for r in responses if r.status_code == 402).json()["error"]
    assert refusal["code"] == "budget_exceeded"
    spend = spend_of(service, record.key_id)
    costs = sum(a["usage"]["cost"]["total_usd"] for a in answered)
    assert spend.total_usd == pytest.approx(costs, abs=1e-6)
    assert spend.total_usd <= budget and spend.reserved_usd == 0
    assert spend.requests == len(answered)
    print(f"burst: {len(answered)} answered, {statuses.count(402)} refused, spent ${costs:.6f}")


def test_a_repeated_request_id_is_charged_every_time(service):
    key, record = key_store(service).create("repeats", budget_usd=100)
    headers = {"authorization": f"Bearer {key}", "x-request-id": "same-id-1"}
    body = {
        "model": "general",
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 3,
        "temperature": 0.5,
    }
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as c:
        first, second = (c.post("/v1/chat/completions", json=body) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert first.json()["mixserve"]["request_id"] == "same-id-1"
    spend = spend_of(service, record.key_id)
    costs = first.json()["usage"]["cost"]["total_usd"] + second.json()["usage"]["cost"]["total_usd"]
    assert spend.requests == 2 and spend.total_usd == pytest.approx(costs, abs=1e-8)
