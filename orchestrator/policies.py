"""Answer policies: how many specialists answer a routed query, and how.

- ``single``: the router's choice answers (streamed).
- ``cascade``: walk the specialists cheapest first along the Pareto frontier of predicted
  quality against relative cost (each step buys predicted quality), starting at the
  cheapest whose predicted quality reaches ``min_quality``; an answer whose mean token
  log-probability reaches ``min_mean_logprob`` is accepted, otherwise (or when the
  answer is empty) the next one is asked. The last step, the specialist with the highest
  predicted quality, is streamed and not judged (there is no one left to escalate to).
- ``ensemble``: the ``top_k`` specialists by the router's utility answer concurrently;
  a synthesizer specialist composes the final answer from their non-empty ones (streamed).

Bounds: at most ``max_calls`` specialist calls, and no call starts whose estimated
prompt plus ``max_tokens`` would take the request's prompt + completion tokens over
``max_total_tokens`` (the estimate for a cascade step is the largest prompt seen so far,
for the synthesis the candidates' prompt plus their answers). The first call of a
request always runs. When a bound stops a cascade, its most confident answer is returned;
when it stops a synthesis, candidates are dropped lowest-ranked first, and with one left
that one's answer is returned.

Policies register by name; the gateway gives each one a ``Caller`` for whole answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

SYNTHESIS_OVERHEAD_TOKENS = 24  # instructions + per-candidate labels of the synthesis prompt


@dataclass(frozen=True)
class PolicySettings:
    """The effective settings of one request (config, with the request's overrides)."""

    max_calls: int = 3
    max_total_tokens: int = 8192
    min_mean_logprob: float = -1.0
    min_quality: float = 0.5
    top_k: int = 2
    synthesizer: str | None = None


@dataclass
class CallRecord:
    specialist: str
    role: str  # "answer", "candidate" or "synthesis"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mean_logprob: float | None = None
    outcome: str = ""
    busy_s: float = 0.0  # the specialist replica's busy time charged to this call
    cached_tokens: int = 0  # prompt tokens its engine found in the prefix cache
    method: str = ""  # how its engine made the answer, when it has several ways (symbolic)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Finish:
    """What a policy decided: stream ``payload`` from ``specialist``, or return ``answer``."""

    specialist: str
    calls: list[CallRecord]
    reason: str
    payload: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None


class CallFailed(Exception):
    """A specialist call failed for a reason another specialist may not share (overload,
    a dead replica, a timeout); the caller raises anything else, e.g. bad input, as is."""


class Caller(Protocol):
    async def __call__(self, specialist: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The whole answer: text, prompt_tokens, completion_tokens, finish_reason and
        cumulative_logprob (None unless the payload asked for ``logprobs``)."""
        ...


@dataclass
class PolicyRequest:
    routing: Mapping[str, Any]  # the router's decision (scores, utilities, relative_costs)
    payload: dict[str, Any]
    settings: PolicySettings
    call: Caller
    calls: list[CallRecord] = field(default_factory=list)

    def spent(self) -> int:
        return sum(c.prompt_tokens + c.completion_tokens for c in self.calls)

    def fits(self, prompt_estimate: int) -> bool:
        need = self.spent() + prompt_estimate + int(self.payload["max_tokens"])
        return not self.calls or need <= self.settings.max_total_tokens

    def sub_payload(self, n: int, **changes: Any) -> dict[str, Any]:
        return {**self.payload, "request_id": f"{self.payload['request_id']}.{n}", **changes}


Policy = Callable[[PolicyRequest], Any]  # async (PolicyRequest) -> Finish
_POLICIES: dict[str, Policy] = {}


def register_policy(name: str) -> Callable[[Policy], Policy]:
    def add(fn: Policy) -> Policy:
        if name in _POLICIES:
            raise ValueError(f"policy {name!r} is already registered")
        _POLICIES[name] = fn
        return fn

    return add


def policy_names() -> list[str]:
    return sorted(_POLICIES)


async def run_policy(name: str, request: PolicyRequest) -> Finish:
    try:
        policy = _POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(policy_names())}") from None
    finish: Finish = await policy(request)
    return finish


def mean_logprob(answer: Mapping[str, Any]) -> float | None:
    total, n = answer.get("cumulative_logprob"), int(answer.get("completion_tokens", 0))
    if total is None:
        return None
    return float(total) / n if n else 0.0


def cascade_chain(
    scores: Mapping[str, float], costs: Mapping[str, float], min_quality: float, max_calls: int
) -> list[str]:
    """Specialists a cascade asks, in order: the Pareto frontier by relative cost (each
    next one predicted better than all cheaper ones), from the cheapest whose predicted
    quality reaches ``min_quality``; cut to ``max_calls`` keeping the best one last."""
    order = sorted(scores, key=lambda n: (costs.get(n, 0.0), -scores[n], n))
    frontier: list[str] = []
    for name in order:
        if not frontier or scores[name] > scores[frontier[-1]]:
            frontier.append(name)
    best = frontier[-1]
    chain = [n for n in frontier[:-1] if scores[n] >= min_quality] + [best]
    return [*chain[: max_calls - 1], best] if len(chain) > max_calls else chain


def ensemble_members(utilities: Mapping[str, float], top_k: int, max_calls: int) -> list[str]:
    """The ``top_k`` specialists by utility, leaving one call for the synthesizer."""
    ranked = sorted(utilities, key=lambda n: (-utilities[n], n))
    return ranked[: max(1, min(top_k, max_calls - 1))]


def synthesis_prompt(question: str, answers: Sequence[tuple[str, str]]) -> str:
    lines = [question.strip(), "", "Answers from specialists:"]
    lines += [f"[{i}] {name}: {text.strip()}" for i, (name, text) in enumerate(answers, 1)]
    lines += [
        "",
        "Using these answers, write the single best answer to the question above. "
        "Where they disagree, keep what is correct.",
    ]
    return "\n".join(lines)


def _scores(routing: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in routing.get("scores", {}).items()}


@register_policy("single")
async def single(req: PolicyRequest) -> Finish:
    choice = str(req.routing["choice"])
    req.calls.append(CallRecord(choice, "answer", outcome="streamed"))
    return Finish(choice, req.calls, "the router's choice answers", payload=req.payload)


@register_policy("cascade")
async def cascade(req: PolicyRequest) -> Finish:
    s = req.settings
    chain = cascade_chain(
        _scores(req.routing), req.routing.get("relative_costs", {}), s.min_quality, s.max_calls
    )
    best: tuple[float, str, dict[str, Any]] | None = None
    largest_prompt = 0
    for step, name in enumerate(chain):
        if best is not None and not req.fits(largest_prompt):
            reason = "cascade: token bound reached, most confident answer returned"
            return Finish(best[1], req.calls, reason, answer=best[2])
        if step == len(chain) - 1:
            req.calls.append(CallRecord(name, "answer", outcome="streamed"))
            reason = (
                "cascade: escalated to the best predicted specialist"
                if step
                else ("cascade: the cheapest adequate specialist is also the best predicted")
            )
            return Finish(name, req.calls, reason, payload=req.sub_payload(step))
        record = CallRecord(name, "answer")
        req.calls.append(record)
        try:
            answer = await req.call(name, req.sub_payload(step, logprobs=True))
        except CallFailed as exc:
            record.outcome = f"failed: {exc}"
            continue
        record.prompt_tokens = int(answer["prompt_tokens"])
        record.completion_tokens = int(answer["completion_tokens"])
        record.busy_s = float(answer.get("busy_s", 0.0))
        record.cached_tokens = int(answer.get("cached_tokens", 0))
        record.method = str(answer.get("method") or "")
        record.mean_logprob = confidence = mean_logprob(answer)
        largest_prompt = max(largest_prompt, record.prompt_tokens)
        if not str(answer["text"]).strip():  # sure of saying nothing is no answer
            record.outcome = "escalated: empty answer"
            continue
        confidence = -float("inf") if confidence is None else confidence
        if confidence >= s.min_mean_logprob:
            record.outcome = "accepted"
            reason = f"cascade: mean log-probability {confidence:.3f} >= {s.min_mean_logprob:g}"
            return Finish(name, req.calls, reason, answer=answer)
        record.outcome = "escalated"
        if best is None or confidence > best[0]:
            best = (confidence, name, answer)
    raise AssertionError("a cascade chain always ends with a streamed step")


@register_policy("ensemble")
async def ensemble(req: PolicyRequest) -> Finish:
    s = req.settings
    utilities = req.routing.get("utilities") or _scores(req.routing)
    members = ensemble_members(utilities, s.top_k, s.max_calls)
    synthesizer = s.synthesizer or str(req.routing["choice"])
    if len(members) < 2:
        return await single(req)
    records = [CallRecord(m, "candidate") for m in members]
    req.calls.extend(records)
    results = await asyncio.gather(
        *(req.call(m, req.sub_payload(i)) for i, m in enumerate(members)), return_exceptions=True
    )
    answers: list[tuple[str, dict[str, Any]]] = []
    for record, result in zip(records, results, strict=True):
        if isinstance(result, CallFailed):
            record.outcome = f"failed: {result}"
        elif isinstance(result, BaseException):
            raise result
        else:
            record.prompt_tokens = int(result["prompt_tokens"])
            record.completion_tokens = int(result["completion_tokens"])
            record.busy_s = float(result.get("busy_s", 0.0))
            record.cached_tokens = int(result.get("cached_tokens", 0))
            record.method = str(result.get("method") or "")
            record.outcome = "composed" if str(result["text"]).strip() else "dropped: empty"
            answers.append((record.specialist, result))
    if not answers:
        raise CallFailed("every ensemble candidate failed")
    answers = [a for a in answers if str(a[1]["text"]).strip()] or answers[:1]
    prompt = max(r.prompt_tokens for r in records)

    def estimate(kept: list[tuple[str, dict[str, Any]]]) -> int:
        extra = sum(int(a["completion_tokens"]) for _, a in kept)
        return prompt + extra + SYNTHESIS_OVERHEAD_TOKENS

    while len(answers) > 1 and not req.fits(estimate(answers)):
        dropped, _ = answers.pop()
        next(r for r in records if r.specialist == dropped).outcome = "dropped: token bound"
    if len(answers) == 1:
        name, answer = answers[0]
        return Finish(name, req.calls, "ensemble: one answer left, returned as is", answer=answer)
    texts = [(name, str(a["text"])) for name, a in answers]
    messages = [tuple(m) for m in req.payload["messages"]]
    last_user = max(i for i, (role, _) in enumerate(messages) if role == "user")
    messages[last_user] = ("user", synthesis_prompt(messages[last_user][1], texts))
    req.calls.append(CallRecord(synthesizer, "synthesis", outcome="streamed"))
    payload = req.sub_payload(len(members), messages=messages)
    return Finish(synthesizer, req.calls, f"ensemble of {len(texts)} composed", payload=payload)
