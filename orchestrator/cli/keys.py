"""``mixserve keys create / list / revoke``: API keys in the service's Redis."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.billing.keys import KeyStore, KeyStoreError
from orchestrator.cli.common import err, fail, out
from orchestrator.redis_clients import sync_client
from orchestrator.runtime import RunState
from orchestrator.settings import get_settings

keys_app = typer.Typer(help="API keys (only their hashes are stored).", no_args_is_help=True)


def redis_client() -> Any:
    """The Redis of ``REDIS_URL``, else the embedded one of the running ``mixserve up``."""
    import redis

    settings = get_settings()
    url = settings.redis_url
    if url is None:
        state = RunState.load(settings.state_file)
        url = state.redis_url if state else None
    if url is None:
        fail("no Redis to keep keys in: set REDIS_URL or start 'mixserve up' first")
    client = sync_client(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        fail(f"cannot reach Redis at {url}: {exc}")
    return client


def _store() -> KeyStore:
    return KeyStore(redis_client())


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key spends for.")],
    budget_usd: Annotated[float | None, typer.Option(help="Spending limit in USD.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
) -> None:
    """Create a key and print it once on stdout (it cannot be shown again)."""
    store = _store()
    try:
        key, record = store.create(tenant, budget_usd, rpm, tpm)
    except KeyStoreError as exc:
        fail(str(exc))
    out.print(key, highlight=False)
    err.print(f"created key {record.key_id} for tenant {record.tenant}", highlight=False)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Every key (id, tenant, limits, status); never the keys themselves."""
    records = _store().list(tenant)
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in records]))
        return
    table = Table("id", "tenant", "created", "budget USD", "rpm", "tpm", "status")

    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    for r in records:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created))
        status = "revoked" if r.revoked else "active"
        table.add_row(
            r.key_id, r.tenant, created, show(r.budget_usd), show(r.rpm), show(r.tpm), status
        )
    out.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id from 'mixserve keys list'.")],
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    try:
        record = _store().revoke(key_id)
    except KeyStoreError as exc:
        fail(str(exc))
    err.print(f"revoked key {record.key_id} of tenant {record.tenant}", highlight=False)
