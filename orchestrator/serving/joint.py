"""Joint assignment of one router batch against the specialists' free slots.

Each routed query comes with what its gateway replica sees free of every engine
(``capacity_of``: free slots, which engine serves which specialist, the spill margins).
When the batch's first choices fit in the free slots nothing changes. When they do not
(a burst for one specialist), the batch is assigned jointly: ``kernels.BalancedAssignment``
over the queries' utilities with each specialist's free slots as its capacity, so the
queries that lose least by moving are the ones moved, as an MoE layer does with a
capacity factor. A query may only move to a specialist within ``max_utility_loss`` of its
first choice's utility and predicted at least ``min_score``; one with no such room keeps
its first choice (it waits there, or spills, as any saturated call does).

Specialists sharing an engine share its slots: each of them is offered the engine's free
slots, and a final pass keeps every engine's total within them; a query never moves to
another specialist of its first choice's engine (it would only meet the same full one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

MASKED = -1.0e4  # utility of a move that is not allowed (far below any real one)


def capacity_of(
    gateway: str,
    free: Mapping[str, int],
    engines: Mapping[str, str],
    max_utility_loss: float | None,
    min_score: float,
) -> dict[str, Any]:
    """What a gateway sends with a query for the joint assignment."""
    return {
        "gateway": gateway,
        "free": dict(free),
        "engines": dict(engines),
        "max_utility_loss": max_utility_loss,
        "min_score": min_score,
    }


def _free_slots(capacities: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """Engine -> free slots: each gateway's latest word, summed over gateways."""
    latest = {c["gateway"]: c for c in capacities}
    free: Counter[str] = Counter()
    for c in latest.values():
        free.update({e: int(n) for e, n in c["free"].items()})
    return free


def assign_jointly(
    decisions: list[dict[str, Any]],
    capacities: Sequence[Mapping[str, Any] | None],
    op: Any,
) -> int:
    """Reassign, in place, the decisions of the batch's queries that came with a capacity
    (``op``: a ``kernels.BalancedAssignment``); returns how many moved. A moved decision
    names its first choice in ``reassigned_from``."""
    taking = [(i, c) for i, c in enumerate(capacities) if c and decisions[i].get("utilities")]
    if not taking:
        return 0
    rows = [i for i, _ in taking]
    caps = [c for _, c in taking]
    free = _free_slots(caps)
    engines: Mapping[str, str] = caps[-1]["engines"]
    demand = Counter(engines.get(decisions[i]["choice"], "") for i in rows)
    if all(n <= free.get(e, 0) for e, n in demand.items()):
        return 0  # every first choice has a free slot
    import torch

    names = [n for n in decisions[rows[0]]["utilities"] if n in engines]
    if len(names) < 2:
        return 0
    utility = torch.full((len(rows), len(names)), MASKED, dtype=torch.float32)
    firsts = []
    for r, (i, cap) in enumerate(zip(rows, caps, strict=True)):
        d = decisions[i]
        first = d["choice"]
        firsts.append(first)
        utilities, scores = d["utilities"], d.get("scores") or {}
        floor = -float("inf")
        loss = cap["max_utility_loss"]
        if loss is not None and first in utilities:
            floor = float(utilities[first]) - float(loss)
        for c, name in enumerate(names):
            allowed = name == first or (
                engines[name] != engines.get(first)  # its engine's other members: no room
                and float(utilities[name]) >= floor
                and float(scores.get(name, 1.0)) >= float(cap["min_score"])
            )
            if allowed:
                utility[r, c] = float(utilities[name])
    capacity = torch.tensor([free.get(engines[n], 0) for n in names], dtype=torch.float32)
    choice = op(utility, capacity).choice.tolist()
    used: Counter[str] = Counter()
    moved = 0
    for r, i in enumerate(rows):
        c = choice[r]
        if c < 0 or float(utility[r, c]) <= MASKED:
            continue  # no allowed room: the first choice stands (it waits or spills)
        engine = engines[names[c]]
        if used[engine] >= free.get(engine, 0):
            continue  # the engine's slots went to specialists sharing it
        used[engine] += 1
        if names[c] != firsts[r]:
            d = decisions[i]
            before = firsts[r]
            d["reassigned_from"] = before
            d["choice"] = names[c]
            d["confidence"] = float((d.get("scores") or {}).get(names[c], d["confidence"]))
            d["reason"] = (
                f"{d['reason']}; balanced: {before} had {free.get(engines[before], 0)} free "
                f"slot(s) for {demand[engines[before]]} queries of this batch"
            )
            moved += 1
    return moved
