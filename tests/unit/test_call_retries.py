"""A specialist call whose replica is lost is sent again before its first token, and
continued from its text mid-answer, so the caller sees the same answer it would have
had; with resumption off or the retries spent it fails with ``replica_lost``.

The handle stands in for a Serve deployment handle: it streams the fake engine's answer
and raises Ray's own ``ActorDiedError`` where a test tells it to (no Ray cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from orchestrator.config import RetryConfig
from orchestrator.errors import APIError, ReplicaLost, from_exception, lost_replica
from orchestrator.serving.calls import SpecialistCalls
from orchestrator.serving.wire import EngineCall
from specialists import GenerationRequest
from specialists.fake_engine import FakeEngine

QUESTION = "write a function that reverses a list"


class Stream:
    def __init__(self, items: Any) -> None:
        self.items = items
        self.cancelled = False

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.items.__anext__()

    def cancel(self) -> None:
        self.cancelled = True


class FlakyHandle:
    """Each call streams the fake engine's answer; call ``i`` dies after ``die_after[i]``
    items (None: never), as a replica SIGKILLed mid-answer does."""

    def __init__(self, die_after: list[int | None], error: Exception | None = None) -> None:
        self.die_after = die_after
        self.error = error or ActorDiedError()
        self.calls: list[EngineCall] = []
        self.engine = FakeEngine("code", 4096)
        asyncio.run(self.engine.start())

    def options(self, **_kw: Any) -> FlakyHandle:
        return self

    @property
    def generate(self) -> FlakyHandle:
        return self

    def remote(self, call: EngineCall) -> Stream:
        assert isinstance(call, EngineCall)  # the typed wire, as the replica gets it
        self.calls.append(call)
        n = len(self.calls) - 1
        limit = self.die_after[n] if n < len(self.die_after) else None
        return Stream(self._items(call, limit))

    async def _items(self, call: EngineCall, limit: int | None) -> Any:
        request = GenerationRequest(
            request_id=call.request_id,
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=call.body.max_tokens,
            logprobs=True,
            continuation=call.continuation,
        )
        sent = 0
        async for chunk in self.engine.generate(request):
            if limit is not None and sent >= limit:
                raise self.error
            sent += 1
            yield {
                "text": chunk.text,
                "prompt_tokens": chunk.prompt_tokens,
                "completion_tokens": chunk.completion_tokens,
                "finish_reason": chunk.finish_reason,
                "cumulative_logprob": chunk.cumulative_logprob,
            }
        yield {
            "text": "",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "busy_s": 0.5,
            "finish_reason": None,
            "cumulative_logprob": None,
        }


def call(
    handle: FlakyHandle, retry: RetryConfig, max_tokens: int = 64, **extra: Any
) -> tuple[Any, Any]:
    async def go() -> Any:
        retried: list[tuple[str, str]] = []
        calls = SpecialistCalls(
            {"code": handle},
            "req-1",
            asyncio.get_running_loop().time() + 30,
            retry=retry,
            on_retry=lambda s, stage: retried.append((s, stage)),
        )
        payload = {
            "request_id": "req-1",
            "max_tokens": max_tokens,
            "messages": [("user", QUESTION)],
            **extra,
        }
        items = [item async for item in await calls.stream("code", payload)]
        return items, calls.retries, retried

    return asyncio.run(go())


FAST = RetryConfig(backoff_s=0)


def answer_of(items: list[dict[str, Any]]) -> tuple[str, int, int]:
    last = [i for i in items if i["text"] or i.get("finish_reason")][-1]
    return "".join(i["text"] for i in items), last["prompt_tokens"], last["completion_tokens"]


def test_an_answer_cut_mid_stream_is_resumed_whole():
    whole, _, _ = call(FlakyHandle([None]), FAST)
    items, retries, retried = call(FlakyHandle([3, 2]), FAST)
    assert answer_of(items) == answer_of(whole)  # same text and token counts
    assert [r["stage"] for r in retries] == ["resumed", "resumed"]
    assert [r["after_tokens"] for r in retries] == [3, 5]
    assert retried == [("code", "resumed"), ("code", "resumed")]
    logprobs = [i["cumulative_logprob"] for i in items if i["text"]]
    assert logprobs == pytest.approx([i["cumulative_logprob"] for i in whole if i["text"]])


def test_the_resumed_call_continues_from_the_text_and_asks_for_what_is_left():
    handle = FlakyHandle([3])
    call(handle, FAST, max_tokens=64)
    first, rest = handle.calls
    assert first.continuation == "" and first.body.max_tokens == 64
    assert rest.continuation == "[code] write a" and rest.body.max_tokens == 61


def test_a_replica_lost_before_the_first_token_is_sent_again():
    items, retries, _ = call(FlakyHandle([0, 0]), FAST)
    assert answer_of(items)[0].startswith("[code] write a function")
    assert [(r["stage"], r["after_tokens"]) for r in retries] == [
        ("before_first_token", 0),
        ("before_first_token", 0),
    ]


def test_spent_retries_end_the_call_with_replica_lost():
    with pytest.raises(APIError) as before:
        call(FlakyHandle([0, 0, 0]), RetryConfig(max_retries=2, backoff_s=0))
    assert before.value.status == 503 and before.value.code == "replica_lost"
    with pytest.raises(ReplicaLost) as mid:
        call(FlakyHandle([2, 1, 1]), RetryConfig(max_retries=2, backoff_s=0))
    assert mid.value.tokens == 4 and mid.value.attempts == 3
    err = from_exception(mid.value, "req-1")
    assert err.code == "replica_lost" and "after 4 tokens" in err.message


def test_with_resumption_off_a_cut_stream_fails_instead_of_ending_short():
    with pytest.raises(ReplicaLost):
        call(FlakyHandle([3]), RetryConfig(resume=False, backoff_s=0))


TOOLS = [{"type": "function", "function": {"name": "search"}}]


@pytest.mark.parametrize(
    "extra", [{"response_format": {"type": "json_object"}}, {"tools": TOOLS}, {"n": 2}]
)
def test_a_constrained_answer_cut_short_is_not_resumed(extra):
    handle = FlakyHandle([3])
    with pytest.raises(ReplicaLost):  # its grammar or parser would start again mid-object
        call(handle, FAST, **extra)
    assert len(handle.calls) == 1
    before_any = FlakyHandle([0])  # lost before its first token: simply sent again
    _, retries, _ = call(before_any, FAST, **extra)
    assert len(before_any.calls) == 2 and retries[0]["stage"] == "before_first_token"


def test_other_failures_are_not_retried():
    handle = FlakyHandle([1], error=ValueError("bad input"))
    with pytest.raises(ValueError):
        call(handle, FAST)
    assert len(handle.calls) == 1
    assert not lost_replica(ValueError("x")) and lost_replica(ActorDiedError())


def test_retry_bounds_are_validated():
    with pytest.raises(ValueError):
        RetryConfig(max_retries=-1)
    with pytest.raises(ValueError):
        RetryConfig(backoff_s=100)
