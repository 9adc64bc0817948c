"""Every response carries its cost: specialist tokens at list price, replica busy time
shared among concurrent requests, and the router's and retriever's share."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers.fleet import ENGINE_USD_PER_HOUR, PRICES
from tests.helpers.http import auth, chat, sse_events


def tokens_usd(call):
    return (call["prompt_tokens"] + call["completion_tokens"]) * PRICES[call["specialist"]] / 1e6


def test_cost_is_in_the_body_and_the_header(client):
    resp = chat(client, "Write a Python function that reverses a list", temperature=0.5)
    body = resp.json()
    cost = body["usage"]["cost"]
    [call] = body["mixserve"]["policy"]["calls"]
    assert call["specialist"] == "code"
    assert cost["specialists_usd"] == pytest.approx(tokens_usd(call), abs=1e-9)
    assert 0 < cost["router_usd"] and 0 < cost["retrieval_usd"]
    parts = cost["specialists_usd"] + cost["router_usd"] + cost["retrieval_usd"]
    assert cost["total_usd"] == pytest.approx(parts, abs=2e-9)
    assert float(resp.headers["x-mixserve-cost-usd"]) == pytest.approx(cost["total_usd"], abs=1e-9)


def test_replica_hours_are_charged_by_busy_time(client):
    started = time.monotonic()
    body = chat(client, "What is 144 divided by 12?", model="math", temperature=0.5).json()
    elapsed = time.monotonic() - started
    [call] = body["mixserve"]["policy"]["calls"]
    assert 0 < call["busy_s"] < elapsed
    expected = tokens_usd(call) + call["busy_s"] * ENGINE_USD_PER_HOUR / 3600
    assert body["usage"]["cost"]["specialists_usd"] == pytest.approx(expected, abs=1e-8)


def test_concurrent_requests_share_the_replica_time(service):
    def ask(_):
        with httpx.Client(base_url=service.url, timeout=60, headers=auth(service)) as c:
            started = time.monotonic()
            body = chat(c, "What is 7 times 8?", model="math", temperature=0.5).json()
            return body["mixserve"]["policy"]["calls"][0]["busy_s"], time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, range(4)))
    wall = time.monotonic() - started
    busy = [b for b, _ in results]
    # overlapping answers split the replica's time: together they are charged no more
    # than the span it was busy, far less than the sum of their latencies
    assert sum(busy) <= wall
    assert sum(busy) < 0.75 * sum(latency for _, latency in results)


def test_streamed_cost_arrives_in_the_final_chunk(client):
    resp = chat(client, "What is 9 times 6?", stream=True, temperature=0.5)
    events = sse_events(resp.text)
    usage = events[-1]["usage"]
    assert usage["cost"]["total_usd"] > usage["cost"]["specialists_usd"] > 0


def test_an_answer_from_the_cache_costs_no_specialist_call(client):
    question = "What is 17 times 3?"
    first = chat(client, question, temperature=0).json()
    again = chat(client, question, temperature=0).json()
    assert again["mixserve"]["cached"] is True
    assert first["usage"]["cost"]["specialists_usd"] > 0
    assert again["usage"]["cost"]["specialists_usd"] == 0
    assert again["usage"]["cost"]["total_usd"] > 0  # routing and retrieval still ran
