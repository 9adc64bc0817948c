"""The service's own metrics, through ``ray.serve.metrics``: they carry the deployment and
replica tags and appear in Ray's Prometheus export (with the ``ray_`` prefix) beside
Ray's own, so the Ray dashboard and ``mixserve dashboards export`` can chart them."""

from __future__ import annotations

from typing import Any


def _tags(*names: str) -> Any:
    """Ray annotates ``tag_keys`` as ``tuple[str]`` (one element); any tuple works."""
    return names


LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]


class ServiceMetrics:
    """Created inside the gateway replica (Ray's metrics need a connected worker)."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self.requests = metrics.Counter(
            "mixserve_requests",
            description="Requests answered, by specialist, policy and outcome.",
            tag_keys=_tags("specialist", "policy", "outcome"),
        )
        self.tokens = metrics.Counter(
            "mixserve_tokens",
            description="Tokens, by specialist and direction (in = prompt, out = completion).",
            tag_keys=_tags("specialist", "direction"),
        )
        self.cost = metrics.Counter(
            "mixserve_cost_usd",
            description="Cost in USD, by specialist.",
            tag_keys=_tags(
                "specialist",
            ),
        )
        self.latency = metrics.Histogram(
            "mixserve_request_latency_s",
            description="Request latency in seconds, by specialist.",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=_tags(
                "specialist",
            ),
        )
        self.ttft = metrics.Histogram(
            "mixserve_time_to_first_token_s",
            description="Time to the first answer token in seconds, by specialist.",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=_tags(
                "specialist",
            ),
        )
        self.methods = metrics.Counter(
            "mixserve_answer_methods",
            description="Answers of engines with several ways to make one (the symbolic "
            "math engine), by specialist and method: symbolic, program_aided, unverified, "
            "refused.",
            tag_keys=_tags("specialist", "method"),
        )
        self.routed = metrics.Counter(
            "mixserve_routing_decisions",
            description="Routing decisions, by chosen specialist.",
            tag_keys=_tags(
                "specialist",
            ),
        )
        self.rejected = metrics.Counter(
            "mixserve_rejections",
            description="Requests refused before generation, by reason (error code).",
            tag_keys=_tags(
                "reason",
            ),
        )
        self.spilled = metrics.Counter(
            "mixserve_spillovers",
            description="Calls spilled over from a saturated specialist, by it and the target.",
            tag_keys=_tags("specialist", "to"),
        )
        self.reassigned = metrics.Counter(
            "mixserve_reassignments",
            description="Routed queries the joint assignment moved off a specialist with no "
            "free slot, by their first choice and where they went.",
            tag_keys=_tags("specialist", "to"),
        )
        self.retried = metrics.Counter(
            "mixserve_replica_retries",
            description="Specialist calls sent again after their replica was lost, by "
            "specialist and stage (before_first_token: sent again; resumed: continued "
            "mid-answer on another replica; gave_up: retries spent).",
            tag_keys=_tags("specialist", "stage"),
        )
        self.queue_wait = metrics.Histogram(
            "mixserve_queue_wait_s",
            description="Seconds a request waited for a slot of its saturated specialist, "
            "by specialist and outcome (served, expired, full).",
            boundaries=LATENCY_BUCKETS_S,
            tag_keys=_tags("specialist", "outcome"),
        )
        self.degraded = metrics.Counter(
            "mixserve_degraded",
            description="Requests answered without a part that failed or timed out "
            "(router: sent to the fallback; retriever: no passages), by part.",
            tag_keys=_tags("part"),
        )
        self.spooled = metrics.Gauge(
            "mixserve_ledger_spooled",
            description="Ledger settlements waiting on local disk for Redis (ledger lag).",
        )

    def answered(
        self,
        specialist: str,
        policy: str,
        usage: dict[str, Any] | None,
        outcome: str,
        seconds: float,
        method: str = "",
    ) -> None:
        """One finished request: its outcome, latency, and (when it produced an answer)
        its tokens, cost and, from an engine with several ways, the way it was made."""
        self.requests.inc(1, tags={"specialist": specialist, "policy": policy, "outcome": outcome})
        if method:
            self.methods.inc(1, tags={"specialist": specialist, "method": method})
        self.latency.observe(seconds, tags={"specialist": specialist})
        if not usage:
            return
        for direction, count in (
            ("in", usage["prompt_tokens"]),
            ("out", usage["completion_tokens"]),
        ):
            if count > 0:  # Ray's counters take positive increments only
                self.tokens.inc(count, tags={"specialist": specialist, "direction": direction})
        cost = float(usage["cost"]["total_usd"])
        if cost > 0:
            self.cost.inc(cost, tags={"specialist": specialist})
