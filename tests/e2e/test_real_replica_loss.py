"""The real engine's replica SIGKILLed mid-answer: the streamed answer goes on, from its
text, on the replica Serve starts in its place (the CPU profile has one), and arrives
whole: finished, with its usage, the retry named in its final chunk, and its text the
greedy answer the engine gives when nothing dies (the fake-engine tests of this are
``tests/unit/test_call_retries.py`` and ``tests/integration/isolated/test_replica_faults.py``).

It runs after the other tests of the live service that share its replica (file order)
and waits until the service is ready again."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx

from orchestrator.runtime.procs import replica_pids

QUESTION = "Explain in detail how a hash map stores keys and resolves collisions."
MAX_TOKENS = 96


def engine_replica(run_id: str) -> int:
    """The pid of the engine deployment's Serve replica."""
    found = replica_pids(run_id, "engine-gemma")
    assert len(found) == 1, f"one engine replica expected, found {found}"
    return found[0]


def stream(url: str, body: dict, on_text=None) -> tuple[str, list[dict]]:
    events = []
    text = ""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line == "data: [DONE]":
                events.append({"done": True})
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            events.append(event)
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                text += piece
                if piece and on_text is not None:
                    on_text(text)
    return text, events


def test_a_killed_engine_replica_mid_answer_still_gives_the_whole_answer(live):
    url = live["url"]
    body = {
        "model": "general",
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
    }
    # the reference, with nothing killed (one token more: not the same cache entry)
    reference, _ = stream(url, {**body, "max_tokens": MAX_TOKENS + 1})
    victim = engine_replica(live["run_id"])
    killed: list[float] = []

    def kill_once(text: str) -> None:
        if not killed and len(text) > 40:  # a few tokens in
            os.kill(victim, signal.SIGKILL)
            killed.append(time.monotonic())

    text, events = stream(url, body, on_text=kill_once)
    assert killed, "the answer ended before the replica could be killed"
    assert events[-1] == {"done": True}
    assert not any("error" in e for e in events), [e for e in events if "error" in e]
    final = next(e for e in events if e.get("usage"))
    retries = final["mixserve"]["retries"]
    assert [r["stage"] for r in retries] == ["resumed"] and retries[0]["after_tokens"] > 0
    assert 0 < final["usage"]["completion_tokens"] <= MAX_TOKENS
    assert final["choices"][0]["finish_reason"] in ("stop", "length")
    # greedy decoding goes on from the same text: the answer is the one nothing cut
    # (compared over its first 200 characters: re-tokenizing the text at the cut may
    # move a token boundary, which greedy decoding can follow a little differently)
    assert text[:200] == reference[:200], (text, reference)
    deadline = time.monotonic() + 300
    while httpx.get(f"{url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "not ready again after the replica was replaced"
        time.sleep(2)
