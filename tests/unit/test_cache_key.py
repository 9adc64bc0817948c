"""The response cache's key holds everything that changes an answer: a legacy completion
of a text is not the chat answer to it, and the honoured OpenAI fields count."""

from orchestrator.serving.cache import cache_key

CHAT = {"request_id": "r", "messages": [("user", "Once upon a time")], "max_tokens": 16,
        "temperature": 0.0, "top_p": 1.0, "stop": [], "seed": None}  # fmt: skip


def test_a_raw_prompt_completion_and_a_chat_answer_never_share_an_entry():
    legacy = {**CHAT, "prompt": "Once upon a time"}
    assert cache_key("general", "v1", legacy) != cache_key("general", "v1", CHAT)


def test_the_honoured_fields_are_part_of_the_key_and_a_plain_request_keeps_its_own():
    plain = cache_key("general", "v1", CHAT)
    assert plain == cache_key("general", "v1", {**CHAT, "request_id": "other"})
    for field, value in (("response_format", {"type": "json_object"}), ("top_logprobs", 2),
                         ("tools", [{"type": "function"}]), ("logit_bias", {"1": 5})):  # fmt: skip
        assert cache_key("general", "v1", {**CHAT, field: value}) != plain, field
