"""The fake engine answers as the specialist a request names (one engine may serve an
engine group's several) and only with LoRA adapters it was built with."""

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
    ask = GenerationRequest("r1", "Question: hi there\nAnswer:", 8)
    assert answer(engine, ask).startswith("[engine-base] ")
    math = GenerationRequest("r2", "Question: hi there\nAnswer:", 8, specialist="math")
    assert answer(engine, math).startswith("[math] ")
    lora = GenerationRequest("r3", "Question: q\nAnswer:", 8, specialist="sql", adapter=sql)
    assert answer(engine, lora).startswith("[sql+sql] ")
    other = Adapter("sql", 1, "/elsewhere")
    with pytest.raises(ValueError, match="'sql' is not loaded"):
        answer(engine, GenerationRequest("r4", "q", 8, adapter=other))
