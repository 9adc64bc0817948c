"""A Grafana dashboard for mixserve's metrics, in the style of the ones Ray ships
(``${datasource}`` template variable, one row of time-series panels per concern).
``mixserve dashboards export DIR`` writes it; load it next to Ray's own dashboards."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

UID = "mixserve-overview"
# (title, unit, [(PromQL, legend)]) per panel; Ray exports custom metrics as ray_<name>
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Requests per second by specialist",
        "reqps",
        [("sum(rate(ray_mixserve_requests_total[5m])) by (specialist)", "{{specialist}}")],
    ),
    (
        "Errors per second by outcome",
        "reqps",
        [
            (
                'sum(rate(ray_mixserve_requests_total{outcome!="ok"}[5m])) by (outcome)',
                "{{outcome}}",
            )
        ],
    ),
    (
        "Answers by method (the symbolic math engine)",
        "reqps",
        [
            (
                "sum(rate(ray_mixserve_answer_methods_total[5m])) by (specialist, method)",
                "{{specialist}} {{method}}",
            )
        ],
    ),
    (
        "Tokens per second",
        "short",
        [
            (
                "sum(rate(ray_mixserve_tokens_total[5m])) by (specialist, direction)",
                "{{specialist}} {{direction}}",
            )
        ],
    ),
    (
        "Cost per hour (USD)",
        "currencyUSD",
        [("sum(rate(ray_mixserve_cost_usd_total[5m])) by (specialist) * 3600", "{{specialist}}")],
    ),
    (
        "Latency p50 / p95",
        "s",
        [
            (
                f"histogram_quantile({q}, sum(rate(ray_mixserve_request_latency_s_bucket[5m]))"
                " by (le, specialist))",
                f"{{{{specialist}}}} p{int(q * 100)}",
            )
            for q in (0.5, 0.95)
        ],
    ),
    (
        "Time to first token p50 / p95",
        "s",
        [
            (
                f"histogram_quantile({q}, sum(rate(ray_mixserve_time_to_first_token_s_bucket[5m]))"
                " by (le, specialist))",
                f"{{{{specialist}}}} p{int(q * 100)}",
            )
            for q in (0.5, 0.95)
        ],
    ),
    (
        "Routing decisions per second",
        "reqps",
        [("sum(rate(ray_mixserve_routing_decisions_total[5m])) by (specialist)", "{{specialist}}")],
    ),
    (
        "Refused before generation (budget, rate limit, auth)",
        "reqps",
        [("sum(rate(ray_mixserve_rejections_total[5m])) by (reason)", "{{reason}}")],
    ),
    (
        "Spill-overs and reassignments away from saturated specialists",
        "reqps",
        [
            (
                "sum(rate(ray_mixserve_spillovers_total[5m])) by (specialist, to)",
                "spilled {{specialist}} → {{to}}",
            ),
            (
                "sum(rate(ray_mixserve_reassignments_total[5m])) by (specialist, to)",
                "reassigned {{specialist}} → {{to}}",
            ),
        ],
    ),
    (
        "Calls retried after a lost replica (killed, node gone, engine dead)",
        "reqps",
        [
            (
                "sum(rate(ray_mixserve_replica_retries_total[5m])) by (specialist, stage)",
                "{{specialist}} {{stage}}",
            )
        ],
    ),
    (
        "Wait for a slot of a saturated specialist: p99",
        "s",
        [
            (
                "histogram_quantile(0.99, sum(rate(ray_mixserve_queue_wait_s_bucket[5m])) "
                "by (le, specialist, outcome))",
                "{{specialist}} {{outcome}}",
            )
        ],
    ),
    (
        "Degraded answers: router or retriever slow or down",
        "reqps",
        [("sum(rate(ray_mixserve_degraded_total[5m])) by (part)", "{{part}}")],
    ),
    (
        "Ledger lag: settlements spooled on disk",
        "short",
        [("sum(ray_mixserve_ledger_spooled)", "spooled")],
    ),
    (
        "Serve queue: requests waiting per deployment",
        "short",
        [("sum(ray_serve_deployment_queued_queries) by (deployment)", "{{deployment}}")],
    ),
    (
        "Serve replicas: requests in progress per deployment",
        "short",
        [("sum(ray_serve_replica_processing_queries) by (deployment)", "{{deployment}}")],
    ),
]


def dashboard() -> dict[str, Any]:
    panels = []
    for i, (title, unit, queries) in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "title": title,
                "type": "timeseries",
                "datasource": "${datasource}",
                "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"expr": expr, "legendFormat": legend, "refId": chr(ord("A") + j)}
                    for j, (expr, legend) in enumerate(queries)
                ],
            }
        )
    return {
        "uid": UID,
        "title": "mixserve",
        "tags": ["mixserve", "ray"],
        "timezone": "utc",
        "schemaVersion": 27,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"selected": False, "text": "Prometheus", "value": "Prometheus"},
                }
            ]
        },
        "panels": panels,
    }


def export(folder: Path) -> Path:
    """Write the dashboard JSON into ``folder`` atomically; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "mixserve_grafana_dashboard.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".dashboard-")
    with os.fdopen(fd, "w") as f:
        json.dump(dashboard(), f, indent=1)
    os.replace(tmp, target)
    return target
