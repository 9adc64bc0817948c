"""The fake engine answers as the specialist a request names (one engine may serve an
several of one engine) and only with LoRA adapters it was built with."""

from __future__ import annotations

import asyncio

import pytest

from specialists import Adapter, GenerationRequest, build_engine


def answer(engine, request):
    async def run():
        await engine.start()
        return "".join([c.text async for c in engine.generate(request)])

    return asyncio.run(run())


def test_one_engine_answers_as_each_specialist_and_with_its_adapter():
    sql = Adapter("sql", 1, "/adapters/sql")
    engine = build_engine(
        "fake", specialist="engine-base", model="m", max_model_len=256, engine_kwargs={},
        adapters=[sql],
    )  # fmt: skip
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}]
    ask = GenerationRequest("r1", asked, 8)
    assert answer(engine, ask) == "[engine-base] hi there"
    math = GenerationRequest("r2", asked, 8, specialist="math")
    assert answer(engine, math) == "[math] hi there"
    lora = GenerationRequest("r3", asked, 8, specialist="sql", adapter=sql)
    assert answer(engine, lora).startswith("[sql+sql] ")
    other = Adapter("sql", 1, "/elsewhere")
    with pytest.raises(ValueError, match="'sql' is not loaded"):
        answer(engine, GenerationRequest("r4", asked, 8, adapter=other))


def test_asked_for_top_logprobs_each_token_comes_with_its_entry():
    engine = build_engine(
        "fake", specialist="general", model="m", max_model_len=256,
        engine_kwargs={"token_logprob": -0.5},
    )  # fmt: skip

    async def chunks(top):
        await engine.start()
        asked = [{"role": "user", "content": "one two"}]
        request = GenerationRequest("r1", asked, 8, top_logprobs=top)
        return [c async for c in engine.generate(request)]

    plain = asyncio.run(chunks(None))
    assert all(c.logprobs is None for c in plain)
    entries = [c.logprobs for c in asyncio.run(chunks(3))]
    assert [e[0]["token"] for e in entries] == ["[general]", " one", " two"]
    first = entries[0][0]
    assert first["logprob"] == -0.5 and first["bytes"] == list(b"[general]")
    assert [t["logprob"] for t in first["top_logprobs"]] == [-0.5, -1.5, -2.5]


def test_answer_tokens_repeats_the_answer_to_exactly_that_length():
    engine = build_engine(
        "fake", specialist="general", model="m", max_model_len=256,
        engine_kwargs={"answer_tokens": 7}, adapters=[],
    )  # fmt: skip
    asked = [{"role": "user", "content": "hi there"}]
    text = answer(engine, GenerationRequest("r1", asked, 64))
    assert text.split() == ["[general]", "hi", "there", "[general]", "hi", "there", "[general]"]
    # max_tokens still cuts it
    assert len(answer(engine, GenerationRequest("r2", asked, 4)).split()) == 4


@pytest.mark.parametrize("value", [-1, 2.5, "64"])
def test_answer_tokens_must_be_a_whole_number_of_zero_or_more(value):
    with pytest.raises(ValueError, match="answer_tokens"):
        build_engine(
            "fake", specialist="general", model="m", max_model_len=256,
            engine_kwargs={"answer_tokens": value}, adapters=[],
        )  # fmt: skip
