"""The shipped gemma_base template, rendered as vLLM renders it (transformers' Jinja
environment), reproduces the Question/Answer layout mixserve wrote by hand before; the
conversation a specialist's replica builds puts instructions first and passages in the
last question."""

from typing import Any

import pytest

from specialists.conversation import chat_messages
from specialists.templates import SHIPPED, shipped_template


def render(messages: list[dict[str, Any]], **kwargs: Any) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        [messages], chat_template=shipped_template("gemma_base"), bos_token="<bos>", **kwargs
    )
    return str(rendered[0])


def test_gemma_base_lays_out_system_questions_and_answers_as_before():
    turns = [("system", "more"), ("user", "hi"), ("assistant", "hello"), ("user", "and?")]
    prompt = render(chat_messages("Be brief.", turns), add_generation_prompt=True)
    assert prompt == (
        "<bos>Be brief.\n\nmore\n\nQuestion: hi\nAnswer: hello\n\nQuestion: and?\nAnswer:"
    )
    bare = render(chat_messages("", [("user", "What is 2+2?")]), add_generation_prompt=True)
    assert bare == "<bos>Question: What is 2+2?\nAnswer:"


def test_gemma_base_continues_a_partial_answer_after_its_text():
    messages = chat_messages("", [("user", "Capital of France?")], continuation=" The capital")
    prompt = render(messages, continue_final_message=True)
    assert prompt == "<bos>Question: Capital of France?\nAnswer: The capital"
    # an answer that began with a line break goes on from exactly the text it had
    messages = chat_messages("", [("user", "Hash maps?")], continuation="\n\nThe hash map ")
    prompt = render(messages, continue_final_message=True)
    assert prompt == "<bos>Question: Hash maps?\nAnswer:\n\nThe hash map "


def test_passages_open_the_last_question_and_never_change_the_prefix():
    history = [("system", "S"), ("user", "first"), ("assistant", "reply"), ("user", "second")]
    bare = render(chat_messages("SYS", history), add_generation_prompt=True)
    prefix = bare[: bare.rindex("reply")]
    for i in range(3):
        grounded = chat_messages("SYS", history, [(f"s{i}.md", f"PASSAGE {i}")])
        assert grounded[-1]["content"] == (
            f"Use these passages if they help; cite them as [n].\n[1] (s{i}.md) PASSAGE {i}"
            "\n\nsecond"
        )
        prompt = render(grounded, add_generation_prompt=True)
        assert prompt.startswith(prefix) and prompt.index("PASSAGE") > len(prefix)
        assert prompt.endswith("second\nAnswer:")


def test_instructions_become_one_leading_system_message():
    messages = chat_messages("SYS", [("user", "q"), ("system", "late"), ("assistant", "a")])
    assert messages == [
        {"role": "system", "content": "SYS\n\nlate"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    assert chat_messages("", [("user", "q")]) == [{"role": "user", "content": "q"}]


def test_the_peer_template_puts_the_system_prompt_in_as_mixserve_does():
    from transformers.utils.chat_template_utils import render_jinja_template

    from mixserve_bench.cli.peer import peer_template
    from orchestrator import profiles
    from orchestrator.config import load_config

    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    spec = cfg.specialists[0]
    asked = [{"role": "user", "content": "Why is the sky blue?"}]
    peer, _ = render_jinja_template(
        [asked], chat_template=peer_template(cfg, spec), bos_token="<bos>",
        add_generation_prompt=True,
    )  # fmt: skip
    ours = render(chat_messages(spec.system_prompt, [("user", asked[0]["content"])]),
                  add_generation_prompt=True)  # fmt: skip
    assert peer[0] == ours and ours.startswith(f"<bos>{spec.system_prompt}\n\n")


def test_only_shipped_templates_are_found_by_name():
    assert "gemma_base" in SHIPPED
    with pytest.raises(KeyError, match="no shipped chat template 'chatml'"):
        shipped_template("chatml")


def test_logprob_entries_go_out_with_their_text_and_a_stop_strings_are_dropped():
    from specialists.openai_layer import TokenEntries

    def entry(token):
        return {"token": token, "logprob": -1.0, "bytes": list(token.encode())}

    entries = TokenEntries()
    assert entries.feed([entry(" Red")], " Red", False) == [entry(" Red")]
    # the stop string's tokens arrive while vLLM holds their text back, then drops it
    assert entries.feed([entry("\n"), entry("Question")], "", False) == []
    assert entries.feed([entry(":")], "", True, cut=True) == []
    # a token whose text arrives a chunk later goes out with it
    late = TokenEntries()
    assert late.feed([entry(" Pa"), entry("ris")], " Pa", False) == [entry(" Pa")]
    assert late.feed([], "ris", True) == [entry("ris")]
    # a byte token spells itself otherwise ("bytes:\\xe2"): it goes out at the end
    odd = TokenEntries()
    assert odd.feed([entry("bytes:\\xe2\\x82"), entry("bytes:\\xac")], "\u20ac", False) == []
    assert len(odd.feed([], "", True)) == 2


def test_gemma_base_shows_the_tools_the_calls_made_and_their_results():
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    call = {"id": "c1", "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
    turns = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "c1"},
    ]
    prompt = render(chat_messages("", turns), tools=[tool], add_generation_prompt=True)
    assert prompt == (
        '<bos>You may call these tools. To call one, answer with <tool_call>{"name": '
        '<its name>, "arguments": <its arguments>}</tool_call>.\n'
        '{"name": "weather", "parameters": {"type": "object"}}\n\n'
        "Question: Weather in Paris?\n"
        'Answer: <tool_call>{"name": "weather", "arguments": {"city": "Paris"}}</tool_call>\n\n'
        "Result: sunny, 21 C\nAnswer:"
    )
