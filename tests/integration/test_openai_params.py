"""The OpenAI parameters the engine carries out, seen by the unmodified `openai` SDK on
the fake fleet: each token's log-probabilities (whole and streamed, through a routed and
a pinned request), and the 400s a bad value gets, naming the parameter. The real engine
does the same through vLLM's serving layer: tests/e2e/test_openai_features.py."""

from __future__ import annotations

import json
import uuid

import pytest
from openai import BadRequestError, OpenAI


@pytest.fixture()
def oai(service):
    return OpenAI(base_url=f"{service.url}/v1", api_key=service.api_key, timeout=60)


def fresh(question: str) -> str:
    return f"{question} ({uuid.uuid4().hex[:6]})"  # never an answer from the cache


@pytest.mark.parametrize("model", ["general", "auto"])
def test_each_token_comes_with_its_top_logprobs(oai, model):
    out = oai.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": fresh("Why is the sky blue?")}],
        max_tokens=32,
        logprobs=True,
        top_logprobs=5,
    )
    choice = out.choices[0]
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries) == choice.message.content
    assert all(len(e.top_logprobs) == 5 and e.top_logprobs[0].token == e.token for e in entries)
    assert len(entries) == out.usage.completion_tokens


def test_streamed_chunks_carry_their_tokens_logprobs(oai):
    stream = oai.chat.completions.create(
        model="general",
        messages=[{"role": "user", "content": fresh("Name a primary colour.")}],
        max_tokens=32,
        logprobs=True,
        top_logprobs=2,
        stream=True,
    )
    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None:
                tokens += [e.token for e in choice.logprobs.content]
    assert text.startswith("[general] Name a primary") and "".join(tokens) == text


def test_without_logprobs_none_are_sent(oai):
    out = oai.chat.completions.create(
        model="general", messages=[{"role": "user", "content": fresh("hi")}], max_tokens=8
    )
    assert out.choices[0].logprobs is None


BAD_SCHEMA = {  # a property's type must be a string or a list of them
    "type": "json_schema",
    "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": 7}}}},
}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": BAD_SCHEMA}, "response_format.json_schema.schema"),
        ({"logit_bias": {"hello": 3}}, "logit_bias"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"n": 9}, "n"),  # above gateway.max_n (8)
    ],
)
def test_bad_values_are_400s_naming_the_parameter(oai, service, extra, param):
    with pytest.raises(BadRequestError) as caught:
        oai.chat.completions.create(
            model="general", messages=[{"role": "user", "content": "hi"}], extra_body=extra
        )
    error = caught.value.body
    assert error["param"] == param, error
    assert caught.value.status_code == 400 and "Traceback" not in str(error)


LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a question up.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}


RESPONSES_LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Look a fact up.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
}


def test_a_tool_call_round_trip(oai):
    question = fresh("Who wrote Hamlet?")
    asked = [{"role": "user", "content": question}]
    first = oai.chat.completions.create(model="auto", messages=asked, tools=[LOOKUP])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup" and call.id
    assert json.loads(call.function.arguments) == {"query": question}
    assert first.model_extra["mixserve"]["specialist"] == first.model
    result = {"role": "tool", "tool_call_id": call.id, "content": "Shakespeare wrote it."}
    final = oai.chat.completions.create(
        model="auto",
        messages=[*asked, choice.message.model_dump(exclude_none=True), result],
        tools=[LOOKUP],
    )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content.endswith("Shakespeare wrote it.")


def test_streamed_tool_call_deltas_add_up_to_the_call(oai):
    question = fresh("What is the tallest mountain?")
    stream = oai.chat.completions.create(
        model="general",
        messages=[{"role": "user", "content": question}],
        tools=[LOOKUP],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
        stream=True,
    )
    arguments, names, finish = "", [], None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or ():
                names += [delta.function.name] if delta.function.name else []
                arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert names == ["lookup"] and json.loads(arguments) == {"query": question}
    assert finish == "tool_calls"


@pytest.mark.parametrize(
    ("extra", "messages", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, None, "tool_choice"),
        (
            {},
            [{"role": "user", "content": "hi"},
             {"role": "tool", "tool_call_id": "c9", "content": "x"}],
            "messages[1].tool_call_id",
        ),  # a result of no call
        ({"mixserve": {"policy": "ensemble"}}, None, "mixserve.policy"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, None,
         "tools[0].function.name"),
    ],
)  # fmt: skip
def test_bad_tool_requests_are_400s_naming_the_parameter(oai, extra, messages, param):
    with pytest.raises(BadRequestError) as caught:
        oai.chat.completions.create(
            model="auto",
            messages=messages or [{"role": "user", "content": "hi"}],
            tools=[LOOKUP],
            extra_body=extra,
        )
    assert caught.value.body["param"] == param, caught.value.body


def test_n_choices_each_whole_and_counted_in_usage(oai):
    question = fresh("Name a river.")
    out = oai.chat.completions.create(
        model="general", messages=[{"role": "user", "content": question}], n=3, max_tokens=32
    )
    texts = [c.message.content for c in out.choices]
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert texts == [f"[general{tag}] {question}" for tag in ("", "#1", "#2")]
    assert out.usage.completion_tokens == sum(len(t.split()) for t in texts)


def test_n_choices_streamed_interleave_and_each_finishes(oai):
    stream = oai.chat.completions.create(
        model="general",
        messages=[{"role": "user", "content": fresh("Name a lake.")}],
        n=2,
        stream=True,
    )
    texts, finishes = {0: "", 1: ""}, {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts[0].startswith("[general] ") and texts[1].startswith("[general#1] ")
    assert finishes == {0: "stop", 1: "stop"}


def test_n_with_a_policy_that_picks_one_answer_is_a_400(oai):
    with pytest.raises(BadRequestError) as caught:
        oai.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "hi"}],
            n=2,
            extra_body={"mixserve": {"policy": "cascade"}},
        )
    assert caught.value.body["param"] == "mixserve.policy"


def test_legacy_completions_continue_the_raw_prompt(oai):
    prompt = fresh("Once upon a time")
    out = oai.completions.create(model="general", prompt=prompt, max_tokens=32, logprobs=2)
    choice = out.choices[0]
    assert out.object == "text_completion" and out.id.startswith("cmpl-")
    assert choice.text == f"[general] {prompt}"  # no template: the prompt as it is
    assert "".join(choice.logprobs.tokens) == choice.text
    assert all(len(top) == 2 for top in choice.logprobs.top_logprobs)
    assert choice.logprobs.text_offset[0] == 0
    assert out.usage.completion_tokens == len(choice.text.split())


def test_legacy_completions_stream_and_route(oai):
    stream = oai.completions.create(
        model="auto", prompt=fresh("Write a Python function"), max_tokens=32, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text.startswith("[code] Write a Python function")
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"echo": True}, "echo"), ({"prompt": ["a", "b"]}, "prompt"), ({"best_of": 3}, "best_of")],
)
def test_what_legacy_completions_do_not_do_is_refused_by_name(oai, extra, param):
    with pytest.raises(BadRequestError) as caught:
        oai.completions.create(model="general", prompt="hi", extra_body=extra)
    assert caught.value.body["param"] == param, caught.value.body


def test_langchains_tool_calling_example_runs_unmodified(service):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def lookup(query: str) -> str:
        """Look a question up."""
        return "Shakespeare wrote it."

    llm = ChatOpenAI(model="auto", base_url=f"{service.url}/v1", api_key=service.api_key)
    bound = llm.bind_tools([lookup])
    question = HumanMessage(fresh("Who wrote Hamlet?"))
    asked = bound.invoke([question])
    call = asked.tool_calls[0]
    assert call["name"] == "lookup" and call["args"] == {"query": question.content}
    answer = bound.invoke([question, asked, ToolMessage(lookup.invoke(call["args"]),
                                                        tool_call_id=call["id"])])  # fmt: skip
    assert answer.content.endswith("Shakespeare wrote it.") and not answer.tool_calls


def test_the_responses_api_answers_as_chat_does(oai):
    question = fresh("Why is the sky blue?")
    out = oai.responses.create(model="general", instructions="Be brief.", input=question)
    assert out.status == "completed" and out.output_text == f"[general] {question}"
    assert out.usage.output_tokens == len(out.output_text.split())
    assert out.model_extra["mixserve"]["specialist"] == out.model == "general"
    # the conversation so far, as messages, assistant parts echoed back
    follow = oai.responses.create(
        model="general",
        input=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Rayleigh."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "And at sunset?"}]},
        ],
        max_output_tokens=2,
    )
    assert follow.output_text == "[general] And" and follow.status == "incomplete"


def test_the_responses_api_streams_its_events(oai):
    question = fresh("Name a planet.")
    events = list(oai.responses.create(model="general", input=question, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]  # fmt: skip
    assert kinds[-1] == "response.completed" and "response.output_text.done" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == f"[general] {question}" == events[-1].response.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"text": {"format": {"type": "xml"}}}, "text.format"),
        (
            {"tool_choice": {"type": "function", "name": "nope"}, "tools": [RESPONSES_LOOKUP]},
            "tool_choice",
        ),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_what_the_responses_api_here_does_not_do_is_refused_by_name(oai, extra, param):
    with pytest.raises(BadRequestError) as caught:
        oai.responses.create(model="general", input="hi", extra_body=extra)
    assert caught.value.body["param"] == param, caught.value.body


def test_the_responses_api_calls_a_function_and_answers_from_its_output(oai):
    question = fresh("Who wrote Hamlet?")
    first = oai.responses.create(model="auto", input=question, tools=[RESPONSES_LOOKUP])
    [call] = first.output  # only the call: no empty message beside it
    assert call.type == "function_call" and call.name == "lookup" and call.call_id
    assert json.loads(call.arguments) == {"query": question}
    assert first.tools[0].name == "lookup" and first.tool_choice == "auto"
    result = {"type": "function_call_output", "call_id": call.call_id,
              "output": "Shakespeare wrote it."}  # fmt: skip
    final = oai.responses.create(
        model="auto",
        input=[{"role": "user", "content": question}, call.model_dump(exclude_none=True), result],
        tools=[RESPONSES_LOOKUP],
    )
    assert final.status == "completed" and final.output_text.endswith("Shakespeare wrote it.")
    assert [item.type for item in final.output] == ["message"]


def test_the_responses_api_streams_a_function_call(oai):
    question = fresh("What is the tallest mountain?")
    events = list(
        oai.responses.create(
            model="general", input=question, tools=[RESPONSES_LOOKUP],
            tool_choice={"type": "function", "name": "lookup"}, stream=True,
        )
    )  # fmt: skip
    kinds = [e.type for e in events]
    assert "response.output_text.delta" not in kinds and kinds[-1] == "response.completed"
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(pieces) == 2 and "".join(pieces) == done.arguments
    assert json.loads(done.arguments) == {"query": question}
    [item] = events[-1].response.output
    assert item.type == "function_call" and item.arguments == done.arguments


def test_the_responses_api_takes_a_json_schema_format(oai):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    out = oai.responses.create(
        model="general", input=fresh("Name a color."),
        text={"format": {"type": "json_schema", "name": "color", "schema": schema}},
    )  # fmt: skip
    assert out.status == "completed" and out.text.format.type == "json_schema"
    with pytest.raises(BadRequestError) as caught:  # checked as chat's response_format is
        oai.responses.create(
            model="general", input="hi",
            text={"format": {"type": "json_schema", "name": "bad",
                             "schema": {"type": "object", "properties": 3}}},
        )  # fmt: skip
    assert caught.value.status_code == 400 and "response_format" in str(caught.value.body["param"])
