"""The symbolic engine in front of a model engine: which way answers, what each chunk
says, token counts and confidence, and the worker under its clock. The model here is a
scripted stand-in (this is about the engine around it); tests/e2e/test_real_math.py runs
the same paths with the real model on the running service."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator

import pytest

from specialists import (
    Chunk,
    ContextLengthError,
    GenerationRequest,
    SpecialistEngine,
    build_solver,
)
from specialists.symbolic import Limits, SymbolicEngine
from specialists.symbolic.program import PROGRAM_SYSTEM, ungrounded


class ScriptedModel(SpecialistEngine):
    """Writes ``expression`` when asked for one, else ``answer``; one token a word; a
    prompt longer than ``context`` words is refused as the real engines refuse it."""

    def __init__(
        self, expression: str, answer: str = "The answer is probably 7.", context: int = 10_000
    ) -> None:
        self.context = context
        self.expression = expression
        self.answer = answer
        self.asked: list[str] = []
        self.aborted: list[str] = []
        self.unsure = False  # its own answers at log-probability -2 a token, not -0.5

    async def start(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, request: GenerationRequest) -> int:
        return self.count_tokens(prompt_of(request))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if self.count_prompt(request) + request.max_tokens > self.context:
            raise ContextLengthError("the prompt does not fit")
        self.asked.append(prompt_of(request))
        program = PROGRAM_SYSTEM in prompt_of(request)
        text = self.expression if program else self.answer
        per_token = -2.0 if self.unsure and not program else -0.5
        words = text.split()
        n = self.count_prompt(request)
        for i, word in enumerate(words):
            last = i == len(words) - 1
            logprob = per_token * (i + 1) if request.logprobs else None
            yield Chunk(("" if i == 0 else " ") + word, n, i + 1, "stop" if last else None, logprob)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def num_unfinished(self) -> int:
        return 0

    async def check_health(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def prompt_of(request: GenerationRequest) -> str:
    """The messages' text, one per line (what the scripted model reads and counts)."""
    return "\n".join(str(m["content"]) for m in request.messages)


def request(question: str, max_tokens: int = 200, logprobs: bool = True) -> GenerationRequest:
    return GenerationRequest(
        "r1",
        [{"role": "user", "content": question}],
        max_tokens,
        logprobs=logprobs,
        specialist="math",
        question=question,
    )


async def collect(engine: SpecialistEngine, req: GenerationRequest) -> list[Chunk]:
    return [c async for c in engine.generate(req)]


@pytest.fixture()
async def engines():
    made: list[SymbolicEngine] = []

    async def make(model: ScriptedModel, limits: Limits | None = None) -> SymbolicEngine:
        engine = SymbolicEngine(model, limits)
        await engine.start()
        made.append(engine)
        return engine

    yield make
    for engine in made:
        pid = engine.sandbox.pid()
        engine.shutdown()
        if pid is not None:  # the worker is gone once the engine shuts down
            for _ in range(200):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail(f"symbolic worker {pid} still running after shutdown")


async def test_a_formula_is_answered_symbolically_without_the_model(engines) -> None:
    model = ScriptedModel("none")
    engine = await engines(model)
    asked = request("What is 4821 times 3977?")
    chunks = await collect(engine, asked)
    text = "".join(c.text for c in chunks)
    assert text.startswith("4821 * 3977 = 19173117\n")
    assert {c.method for c in chunks} == {"symbolic"}
    assert model.asked == []  # the model was not needed
    last = chunks[-1]
    assert last.finish_reason == "stop"
    assert last.prompt_tokens == len(prompt_of(asked).split())  # the model's tokenizer counts
    assert last.completion_tokens == len(text.split())
    assert last.cumulative_logprob == 0.0  # exact: a cascade accepts it
    counts = [c.completion_tokens for c in chunks]
    assert counts == sorted(counts) and len(chunks) > 1  # streamed, counts cumulative


async def test_a_word_problem_gets_the_models_expression_evaluated_exactly(engines) -> None:
    model = ScriptedModel("3 * 17 + 4")
    engine = await engines(model)
    question = "Ann has 3 bags of 17 marbles and finds 4 more. How many marbles?"
    chunks = await collect(engine, request(question))
    text = "".join(c.text for c in chunks)
    assert text.splitlines()[0] == "55"
    assert "3 * 17 + 4 = 55" in text
    assert {c.method for c in chunks} == {"program_aided"}
    assert len(model.asked) == 1 and question in model.asked[0]
    last = chunks[-1]
    # the model's expression (5 tokens) is part of the usage
    assert last.completion_tokens == 5 + len(text.split())
    mean = last.cumulative_logprob / last.completion_tokens
    assert mean == pytest.approx(-2.5 / 5)  # as sure as the model was of its expression


@pytest.mark.parametrize("expression", ["none", "about five apples", "x + 1"])
async def test_without_a_number_the_models_own_answer_stands_unverified(
    engines, expression
) -> None:
    model = ScriptedModel(expression, answer="Primes never end because of Euclid.")
    engine = await engines(model)
    chunks = await collect(engine, request("Prove that there are infinitely many primes."))
    assert "".join(c.text for c in chunks) == "Primes never end because of Euclid."
    assert {c.method for c in chunks} == {"unverified"}
    assert len(model.asked) == 2  # the expression asked for, then the answer
    tried = len(expression.split())  # the model's attempt is part of the usage
    assert chunks[-1].completion_tokens == 6 + tried


async def test_a_refusal_is_quick_clear_and_never_accepted_by_a_cascade(engines) -> None:
    model = ScriptedModel("1")
    engine = await engines(model)
    for question in ("9**9**9**9", "What is __import__('os')?", "(" * 300 + "1" + ")" * 300):
        started = time.perf_counter()
        chunks = await collect(engine, request(question))
        assert time.perf_counter() - started < 1.0
        text = "".join(c.text for c in chunks)
        assert text.startswith("I cannot work on this:")
        assert {c.method for c in chunks} == {"refused"}
        assert chunks[-1].cumulative_logprob is None
    assert model.asked == []


async def test_a_long_answer_is_cut_at_max_tokens(engines) -> None:
    engine = await engines(ScriptedModel("none"))
    chunks = await collect(engine, request("Solve for x: 3x + 5 = 20", max_tokens=5))
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].completion_tokens <= 5
    assert "".join(c.text for c in chunks).startswith("x = 5")


async def test_a_solve_past_its_time_is_killed_refused_and_the_worker_replaced(engines) -> None:
    engine = await engines(ScriptedModel("none"), Limits(timeout_s=1.0))
    first = engine.sandbox.pid()
    started = time.perf_counter()
    chunks = await collect(engine, request("integrate sin(x)**20*cos(x)**17*exp(x)"))
    elapsed = time.perf_counter() - started
    assert "".join(c.text for c in chunks).startswith(
        "I cannot work on this: solving took longer than 1 s"
    )
    assert 1.0 <= elapsed < 3.0
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # killed (and reaped)
    chunks = await collect(engine, request("What is 6 * 7?"))
    assert "".join(c.text for c in chunks).startswith("6 * 7 = 42")
    assert engine.sandbox.pid() not in (None, first) and engine.sandbox.restarts == 1


async def test_the_registry_builds_it_by_name_in_front_of_a_model() -> None:
    model = ScriptedModel("none")
    solver = build_solver("symbolic", inner=model, timeout_s=3.0)
    assert isinstance(solver, SymbolicEngine) and solver.limits.timeout_s == 3.0
    assert solver.inner is model
    with pytest.raises(ValueError, match="unknown solver 'wolfram'; known: symbolic"):
        build_solver("wolfram", inner=model)


@pytest.mark.parametrize(
    ("question", "expression", "outcome", "method"),
    [
        ("What is 4821 times 3977?", "none", "accepted", "symbolic"),
        ("Ann has 3 bags of 17 marbles. How many?", "3 * 17", "accepted", "program_aided"),
        ("9**9**9**9", "none", "escalated", "refused"),
        ("Prove there are infinitely many primes.", "none", "escalated", "unverified"),
    ],
)
async def test_in_a_cascade_it_is_the_cheap_step_accepted_only_when_it_found_a_number(
    engines, question, expression, outcome, method
) -> None:
    """The cascade policy as it is, with the symbolic engine as its cheapest step: an
    exact solve (and a confident model-written expression) is accepted, a refusal or the
    model's own unsure answer goes on to the next specialist."""
    from orchestrator.policies import PolicyRequest, PolicySettings, run_policy

    model = ScriptedModel(expression, answer="maybe seven or so")
    model.unsure = True
    engine = await engines(model)

    async def call(specialist, payload):
        assert specialist == "symbolic"
        req = GenerationRequest(
            payload["request_id"],
            [{"role": "user", "content": question}],
            payload["max_tokens"],
            logprobs=payload.get("logprobs", False),
            question=question,
        )
        chunks = await collect(engine, req)
        last = chunks[-1]
        return {
            "text": "".join(c.text for c in chunks),
            "prompt_tokens": last.prompt_tokens,
            "completion_tokens": last.completion_tokens,
            "finish_reason": last.finish_reason,
            "cumulative_logprob": last.cumulative_logprob,
            "method": last.method,
        }

    routing = {
        "choice": "big",
        "scores": {"symbolic": 0.6, "big": 0.9},
        "relative_costs": {"symbolic": 0.01, "big": 1.0},
    }
    payload = {"request_id": "r1", "messages": [("user", question)], "max_tokens": 200}
    finish = await run_policy(
        "cascade",
        PolicyRequest(routing, payload, PolicySettings(min_mean_logprob=-1.0), call),
    )
    first = finish.calls[0]
    assert (first.specialist, first.outcome, first.method) == ("symbolic", outcome, method)
    assert finish.specialist == ("symbolic" if outcome == "accepted" else "big")


def test_an_expression_is_grounded_only_in_numbers_the_question_gives() -> None:
    question = "A baker makes 22 loaves every day. How many loaves does he make in 24 days?"
    assert ungrounded("22 * 24", question) == []
    assert ungrounded("22 * 24 * 2", question) == []  # 2: a unit factor (twice, half)
    assert ungrounded("22 * 24 * 3", question) == ["3"]
    assert ungrounded("25 * 7 * 2", "Sara reads 25 pages a day for 2 weeks.") == []
    assert ungrounded("12 * 3", "A dozen eggs, three times.") == []
    assert ungrounded("1200 + 5", "It costs 1,200 dollars plus 5.") == []  # 1,200 is 1200


async def test_a_made_up_number_is_not_passed_off_as_exact(engines) -> None:
    model = ScriptedModel("22 * 24 * 3", answer="He makes many loaves.")
    engine = await engines(model)
    question = "A baker makes 22 loaves every day. How many loaves does he make in 24 days?"
    chunks = await collect(engine, request(question))
    assert "".join(c.text for c in chunks) == "He makes many loaves."
    assert {c.method for c in chunks} == {"unverified"}


async def test_stop_strings_cut_an_exact_answer_as_they_cut_a_models(engines) -> None:
    engine = await engines(ScriptedModel("none"))
    asked = dataclasses.replace(request("What is 6 * 7?"), stop=["\n", "\nQuestion:"])
    chunks = await collect(engine, asked)
    assert "".join(c.text for c in chunks) == "6 * 7 = 42"
    assert chunks[-1].finish_reason == "stop" and chunks[-1].completion_tokens == 5


async def test_a_question_abandoned_mid_solve_leaves_no_reply_for_the_next(engines) -> None:
    engine = await engines(ScriptedModel("none"), Limits(timeout_s=30.0))
    slow = asyncio.create_task(
        engine.sandbox.ask("question", "integrate sin(x)**20*cos(x)**17*exp(x)")
    )
    while not engine.sandbox.in_flight:  # until the worker has it
        await asyncio.sleep(0.01)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    outcome = await engine.sandbox.ask("question", "What is 6 * 7?")
    assert outcome.status == "solved" and outcome.result == "42"


async def test_a_question_too_long_for_the_worked_examples_still_gets_the_models_answer(
    engines,
) -> None:
    question = "Why do " + "very " * 30 + "long proofs work?"
    fits = len(prompt_of(request(question, max_tokens=20)).split()) + 20
    model = ScriptedModel("1 + 1", answer="Because they do.", context=fits)
    engine = await engines(model)
    chunks = await collect(engine, request(question, max_tokens=20))
    assert "".join(c.text for c in chunks) == "Because they do."
    assert {c.method for c in chunks} == {"unverified"}
    assert chunks[-1].completion_tokens == 3  # nothing spent on the expression
