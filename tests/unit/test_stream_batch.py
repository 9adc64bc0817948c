"""An engine replica's stream: chunks that come within the interval of the last send go
as one (text and log-probability entries joined, counts the latest), the first at once;
other choices and tool-call deltas are never joined; a failure arrives after what came
before it; a reader that goes away closes the engine's stream."""

from __future__ import annotations

import asyncio

import pytest

from specialists.engine import Chunk
from specialists.stream_batch import batched, merge


def chunk(text, n, finish=None, index=0, logprobs=None, tool_calls=None):
    return Chunk(text, 5, n, finish, logprobs=logprobs, index=index, tool_calls=tool_calls)


async def source(chunks, delay_s=0.0, fail=None, closed=None):
    try:
        for c in chunks:
            await asyncio.sleep(delay_s)
            yield c
        if fail is not None:
            raise fail
    finally:
        if closed is not None:
            closed.append(True)


def collect(stream):
    async def run():
        return [c async for c in stream]

    return asyncio.run(run())


def test_merge_joins_text_logprobs_and_takes_the_latest_counts():
    a = chunk("Hello", 1, logprobs=[{"token": "Hello"}])
    b = chunk(" world", 2, logprobs=[{"token": " world"}])
    c = chunk("!", 3, finish="stop")
    (one,) = merge([a, b, c])
    assert one.text == "Hello world!"
    assert one.completion_tokens == 3 and one.finish_reason == "stop"
    assert one.logprobs == [{"token": "Hello"}, {"token": " world"}]


def test_merge_keeps_choices_tool_calls_and_what_follows_a_finish_apart():
    calls = [{"index": 0, "function": {"arguments": "{}"}}]
    chunks = [
        chunk("a", 1, index=0),
        chunk("b", 2, index=1),
        chunk("", 3, tool_calls=calls),
        chunk("c", 4, finish="stop"),
        chunk("", 4),  # a closing usage chunk after the finish
    ]
    assert [c.text for c in merge(chunks)] == ["a", "b", "", "c", ""]


def test_fast_chunks_go_as_one_after_the_first():
    chunks = [chunk(f" w{i}", i + 1) for i in range(20)]
    out = collect(batched(source(chunks), 0.05))
    assert out[0].text == " w0"  # the first at once
    assert len(out) == 2
    assert "".join(c.text for c in out) == "".join(c.text for c in chunks)
    assert out[-1].completion_tokens == 20


def test_slow_chunks_go_as_they_come():
    chunks = [chunk(f" w{i}", i + 1) for i in range(4)]
    out = collect(batched(source(chunks, delay_s=0.03), 0.005))
    assert [c.text for c in out] == [c.text for c in chunks]


def test_no_interval_passes_every_chunk():
    chunks = [chunk(f" w{i}", i + 1) for i in range(5)]
    assert collect(batched(source(chunks), 0)) == chunks


@pytest.mark.parametrize("interval", [0, 0.05])
def test_a_failure_arrives_after_what_came_before(interval):
    got = []

    async def run():
        async for c in batched(source([chunk("a", 1)], fail=RuntimeError("engine died")), interval):
            got.append(c.text)

    with pytest.raises(RuntimeError, match="engine died"):
        asyncio.run(run())
    assert got == ["a"]


@pytest.mark.parametrize("interval", [0, 0.05])
def test_a_reader_that_goes_away_closes_the_engine_stream(interval):
    closed: list[bool] = []
    endless = [chunk(f" w{i}", i + 1) for i in range(10_000)]

    async def run():
        stream = batched(source(endless, delay_s=0.001, closed=closed), interval)
        async for _ in stream:
            break
        await stream.aclose()
        return list(closed)

    assert asyncio.run(run()) == [True]


def test_a_cancelled_reader_closes_the_engine_stream():
    closed: list[bool] = []

    async def run():
        async def read():
            async for _ in batched(source([chunk("a", 1)] * 1000, 0.01, closed=closed), 0.05):
                pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return list(closed)

    assert asyncio.run(run()) == [True]
