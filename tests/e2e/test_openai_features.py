"""OpenAI features carried out by the real engine through vLLM's own serving layer,
asked by the unmodified `openai` SDK: a pydantic model parsed from a constrained answer
(on a 270M base model: the grammar, not the model, makes it valid), a JSON schema
streamed, each token's top log-probabilities, the math specialist's solver giving way to
the constrained model when the request sets the answer's form, and an invalid schema
refused by name."""

from __future__ import annotations

import json

import pytest
from openai import BadRequestError, OpenAI
from pydantic import BaseModel


class City(BaseModel):
    city: str
    country: str


@pytest.fixture(scope="module")
def oai(live):
    return OpenAI(base_url=f"{live['url']}/v1", api_key="unused", timeout=300)


def test_parse_returns_the_pydantic_object(oai):
    out = oai.chat.completions.parse(
        model="general",
        messages=[{"role": "user", "content": "Which city is the capital of France?"}],
        response_format=City,
        max_tokens=60,
        temperature=0,
    )
    parsed = out.choices[0].message.parsed
    assert isinstance(parsed, City) and parsed.city, out.choices[0].message.content
    assert out.choices[0].finish_reason == "stop"


def test_a_json_schema_streamed_joins_into_a_matching_object(oai):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}, "unit": {"type": "string"}},
        "required": ["answer", "unit"],
        "additionalProperties": False,
    }
    stream = oai.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "How many legs does a spider have?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "count", "schema": schema, "strict": True},
        },
        max_tokens=60,
        temperature=0,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    value = json.loads(text)
    assert set(value) == {"answer", "unit"} and isinstance(value["answer"], int)


def test_each_token_comes_with_its_five_most_likely(oai):
    out = oai.chat.completions.create(
        model="general",
        messages=[{"role": "user", "content": "Name a primary color."}],
        max_tokens=12,
        temperature=0,
        logprobs=True,
        top_logprobs=5,
    )
    choice = out.choices[0]
    entries = choice.logprobs.content
    assert entries and "".join(e.token for e in entries) == choice.message.content
    for e in entries:  # greedy: the sampled token is the likeliest of the five
        assert len(e.top_logprobs) == 5 and e.logprob <= 0
        assert e.logprob == pytest.approx(max(t.logprob for t in e.top_logprobs), abs=1e-4)


def test_the_math_solver_gives_way_to_the_model_when_the_form_is_set(oai):
    out = oai.chat.completions.create(
        model="math",
        messages=[{"role": "user", "content": "What is 17 times 23?"}],
        response_format={"type": "json_object"},
        max_tokens=40,
        temperature=0,
    )
    assert isinstance(json.loads(out.choices[0].message.content), dict)
    assert out.model_extra["mixserve"]["policy"].get("method", "") != "symbolic"


def test_an_invalid_schema_is_refused_by_name(oai):
    with pytest.raises(BadRequestError) as caught:
        oai.chat.completions.create(
            model="general",
            messages=[{"role": "user", "content": "hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "bad", "schema": {"type": "objectx"}},
            },
        )
    assert caught.value.body["param"] == "response_format.json_schema.schema"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def test_a_tool_call_round_trip_on_the_real_model(oai):
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = oai.chat.completions.create(
        model="auto",
        messages=asked,
        tools=[WEATHER],
        tool_choice="required",  # vLLM constrains the calls to the tools' schemas
        max_tokens=60,
        temperature=0,
    )
    choice = first.choices[0]
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.id
    assert set(json.loads(call.function.arguments)) == {"city"}
    result = {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees."}
    final = oai.chat.completions.create(
        model=first.model,
        messages=[*asked, choice.message.model_dump(exclude_none=True), result],
        tools=[WEATHER],
        max_tokens=30,
        temperature=0,
    )
    assert final.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert final.usage.prompt_tokens > first.usage.prompt_tokens  # the result was read


def test_langchain_structured_output_and_tool_calling_run_unmodified(live):
    """LangChain's own examples (``with_structured_output``, ``bind_tools``), as its docs
    write them, pointed at mixserve."""
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model="general", base_url=f"{live['url']}/v1", api_key="unused", temperature=0,
        max_tokens=60, timeout=300,
    )  # fmt: skip
    city = llm.with_structured_output(City).invoke("Which city is the capital of France?")
    assert isinstance(city, City) and city.city

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        return "sunny"

    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(
        "What is the weather in Paris?"
    )
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    assert set(message.tool_calls[0]["args"]) == {"city"}


def test_the_responses_api_on_the_real_model(oai):
    out = oai.responses.create(
        model="general", input="Name a primary color.", max_output_tokens=12, temperature=0
    )
    assert out.status in ("completed", "incomplete") and out.output_text.strip()
    assert 0 < out.usage.output_tokens <= 12


def test_three_choices_sampled_by_the_real_engine_and_counted_in_usage(oai):
    out = oai.chat.completions.create(
        model="general",
        messages=[{"role": "user", "content": "Name an animal."}],
        n=3,
        max_tokens=8,
        temperature=1.0,
        seed=7,
    )
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert all(c.message.content and c.finish_reason in ("stop", "length") for c in out.choices)
    # usage counts every choice: 8 tokens for each cut at the limit, one at least for others
    cut = sum(c.finish_reason == "length" for c in out.choices)
    assert 8 * cut + (3 - cut) <= out.usage.completion_tokens <= 3 * 8


def test_a_legacy_completion_streamed_is_the_one_given_whole(oai):
    asked = {"model": "general", "prompt": "The capital of France is", "max_tokens": 8,
             "temperature": 0}  # fmt: skip
    whole = oai.completions.create(**asked)
    streamed = "".join(c.choices[0].text for c in oai.completions.create(**asked, stream=True)
                       if c.choices)  # fmt: skip
    assert whole.choices[0].text.strip() and streamed == whole.choices[0].text
    assert whole.object == "text_completion" and 0 < whole.usage.completion_tokens <= 8


def test_the_responses_api_calls_a_function_and_keeps_a_schema_on_the_real_model(oai):
    tool = {"type": "function", **WEATHER["function"]}  # the Responses API's flat form
    called = oai.responses.create(
        model="general", input="What is the weather in Paris?", tools=[tool],
        tool_choice="required", max_output_tokens=60, temperature=0,
    )  # fmt: skip
    calls = [item for item in called.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id
    assert set(json.loads(calls[0].arguments)) == {"city"}
    # the request of the chat test above, through the Responses API: the same JSON
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}, "unit": {"type": "string"}},
        "required": ["answer", "unit"],
        "additionalProperties": False,
    }
    shaped = oai.responses.create(
        model="auto", input="How many legs does a spider have?", max_output_tokens=60,
        temperature=0,
        text={"format": {"type": "json_schema", "name": "count", "schema": schema, "strict": True}},
    )  # fmt: skip
    value = json.loads(shaped.output_text)
    assert set(value) == {"answer", "unit"} and isinstance(value["answer"], int), value
