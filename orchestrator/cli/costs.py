"""``mixserve costs``: spend from the ledger's request records, grouped as asked."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.billing import KeyStore, LedgerReader
from orchestrator.billing.keys import TENANT_PATTERN
from orchestrator.cli.common import fail, out
from orchestrator.cli.keys import redis_client

GROUPS = ("specialist", "tenant", "day")


def parse_since(text: str) -> float:
    """A UTC date (2026-11-23) or ISO time (2026-11-23T10:00, offsets allowed)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"--since {text!r} is not a date like 2026-11-23 or 2026-11-23T10:00"
        raise ValueError(msg) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def summarize(records: list[dict[str, str]], by: str) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    )
    for r in records:
        name = (
            dt.datetime.fromtimestamp(float(r["time"]), dt.UTC).strftime("%Y-%m-%d")
            if by == "day"
            else r.get(by, "?")
        )
        g = groups[name]
        g["requests"] += 1
        g["prompt_tokens"] += int(r.get("prompt_tokens", 0))
        g["completion_tokens"] += int(r.get("completion_tokens", 0))
        g["cost_usd"] += float(r.get("cost_usd", 0.0))
    return [{by: name, **g} for name, g in sorted(groups.items())]


def _known_tenant(client: Any, tenant: str) -> None:
    """Fail in one line unless ``tenant`` is well formed and known to the ledger (it has
    spent) or to the key store (it has keys): a typo must not pass for zero spend."""
    if not TENANT_PATTERN.match(tenant):
        fail(f"--tenant {tenant!r} is not a tenant name (a-z, 0-9, '.', '_', '-')")
    if LedgerReader(client).has_spent(tenant):
        return
    if not KeyStore(client).list(tenant):
        fail(f"no tenant {tenant!r}: it has no keys and no recorded requests")


def costs(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's requests.")] = None,
    since: Annotated[str | None, typer.Option(help="From this UTC date or time.")] = None,
    by: Annotated[str, typer.Option(help="Group by specialist, tenant or day.")] = "specialist",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
) -> None:
    """Spend per specialist, tenant or day, from the ledger's request records."""
    if by not in GROUPS:
        fail(f"--by must be one of {', '.join(GROUPS)}, not {by!r}")
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        fail(str(exc))
    client = redis_client()
    if tenant is not None:
        _known_tenant(client, tenant)
    records = [
        r
        for r in LedgerReader(client).records(since=start)
        if tenant is None or r.get("tenant") == tenant
    ]
    rows = summarize(records, by)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(by, "requests", "prompt tokens", "completion tokens", "cost USD")
    for row in rows:
        table.add_row(
            row[by],
            str(row["requests"]),
            str(row["prompt_tokens"]),
            str(row["completion_tokens"]),
            f"{row['cost_usd']:.6f}",
        )
    out.print(table)
