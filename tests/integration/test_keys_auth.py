"""API keys through `mixserve keys` (real Redis) and the gateway's checks of them."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.helpers.cli import invoke_mixserve
from tests.helpers.http import chat


def keys_cli(service, *args):
    return invoke_mixserve("keys", *args, env={"REDIS_URL": service.redis_url})


def listed(service):
    proc = keys_cli(service, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture()
def anonymous(service):
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c


@pytest.mark.parametrize(
    "headers, code",
    [
        ({}, "missing_api_key"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "invalid_api_key"),
        ({"authorization": "Bearer " + "x" * 300}, "invalid_api_key"),
        ({"authorization": "Bearer msk-" + "A" * 32}, "invalid_api_key"),
        ({"authorization": "Bearer not-a-key"}, "invalid_api_key"),
    ],
)
def test_calls_without_a_valid_key_are_401(anonymous, headers, code):
    for path, body in (("/v1/chat/completions", None), ("/v1/models", None)):
        if body is None and path.endswith("completions"):
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            resp = anonymous.post(path, json=body, headers=headers)
        else:
            resp = anonymous.get(path, headers=headers)
        assert resp.status_code == 401, resp.text
        error = resp.json()["error"]
        assert error["code"] == code and error["type"] == "authentication_error"
        assert resp.headers["www-authenticate"] == "Bearer"


def test_health_probes_need_no_key(anonymous):
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200


def test_created_key_works_and_a_revoked_one_is_refused_within_a_second(service):
    proc = keys_cli(service, "create", "--tenant", "acme", "--budget-usd", "50", "--rpm", "60")
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip()
    assert key.startswith("msk-") and "acme" in proc.stderr
    keyed = httpx.Client(
        base_url=service.url, timeout=60, headers={"authorization": f"Bearer {key}"}
    )
    assert chat(keyed, "What is 2 + 2?").status_code == 200
    [record] = [r for r in listed(service) if r["tenant"] == "acme"]
    assert (record["budget_usd"], record["rpm"], record["tpm"]) == (50.0, 60, None)
    assert key not in json.dumps(listed(service))  # only hashes are kept
    revoked = keys_cli(service, "revoke", record["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    started = time.monotonic()
    resp = chat(keyed, "What is 2 + 2?")
    keyed.close()
    assert resp.status_code == 401 and time.monotonic() - started < 1.0
    assert resp.json()["error"]["code"] == "revoked_api_key"


@pytest.mark.parametrize(
    "args, message",
    [
        (["create", "--tenant", "acme", "--budget-usd", "-1"], "budget must be above 0"),
        (["create", "--tenant", "acme", "--budget-usd", "1e12"], "budget must be above 0"),
        (["create", "--tenant", "Bad Tenant!"], "tenant 'Bad Tenant!' must be"),
        (["create", "--tenant", "acme", "--rpm", "0"], "rpm must be between"),
        (["revoke", "0123456789ab"], "no key with id '0123456789ab'"),
        (["revoke", "../../etc"], "no key with id"),
    ],
)
def test_bad_key_commands_fail_in_one_line_and_write_nothing(service, args, message):
    before = listed(service)
    proc = keys_cli(service, *args)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert listed(service) == before


def keyed_client(service, *create_args):
    proc = keys_cli(service, "create", *create_args)
    assert proc.returncode == 0, proc.stderr
    headers = {"authorization": f"Bearer {proc.stdout.strip()}"}
    return httpx.Client(base_url=service.url, timeout=60, headers=headers)


def test_requests_per_minute_are_limited_with_retry_after(service):
    with keyed_client(service, "--tenant", "rpm-test", "--rpm", "2") as c:
        assert [chat(c, "What is 1 + 1?").status_code for _ in range(2)] == [200, 200]
        resp = chat(c, "What is 1 + 1?")
        assert resp.status_code == 429, resp.text
        assert resp.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        bad = c.post("/v1/chat/completions", json={"model": "auto", "messages": []})
        assert bad.status_code == 400  # bad input is answered as such, never as a 429


def test_tokens_per_minute_are_limited(service):
    with keyed_client(service, "--tenant", "tpm-test", "--tpm", "10") as c:
        first = chat(c, "What is 1 + 1?", temperature=0.5)
        assert first.status_code == 200 and first.json()["usage"]["total_tokens"] > 10
        resp = chat(c, "What is 1 + 1?", temperature=0.5)
        assert resp.status_code == 429 and "tokens per minute" in resp.json()["error"]["message"]


def test_budget_is_reserved_before_and_settled_after(service):
    from tests.helpers.fleet import ledger

    # the integration app prices the router at $360/h and allows 6 s a request: the
    # maximum possible cost of one request is above $0.6, so $0.5 can never cover one
    with keyed_client(service, "--tenant", "poor", "--budget-usd", "0.5") as c:
        resp = chat(c, "What is 3 + 3?")
        assert resp.status_code == 402, resp.text
        error = resp.json()["error"]
        assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
        assert "does not cover this request" in error["message"]
    with keyed_client(service, "--tenant", "rich", "--budget-usd", "100") as c:
        body = chat(c, "What is 4 + 4?", temperature=0.5).json()
    [record] = [r for r in listed(service) if r["tenant"] == "rich"]
    book = ledger(service)
    spend = book.spend("key", record["key_id"])
    tenant = book.spend("tenant", "rich")
    assert spend.total_usd == pytest.approx(body["usage"]["cost"]["total_usd"], abs=1e-8)
    assert spend.reserved_usd == 0 and spend.requests == 1 == tenant.requests
    rid = body["mixserve"]["request_id"]
    records = [r for r in book.records() if r["request_id"] == rid]
    assert len(records) == 1 and records[0]["outcome"] == "ok"
    assert int(records[0]["prompt_tokens"]) == body["usage"]["prompt_tokens"]
