"""What `mixserve bench overhead` gives the peer (`vllm serve`) so that both sides do the
same work: the specialist's chat template with its system prompt put in, and the
features every request of a round asks for (`--feature`)."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.config import MixserveConfig, SpecialistConfig

# what each request of `bench overhead --feature` adds, on both sides
FEATURES: dict[str, dict[str, Any]] = {
    "plain": {},
    "json_schema": {
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"answer": {"type": "string"}},
                    "required": ["answer"],
                    "additionalProperties": False,
                },
            },
        }
    },
    "tools": {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "search",
                    "description": "Search the web.",
                    "parameters": {
                        "type": "object",
                        "properties": {"query": {"type": "string"}},
                        "required": ["query"],
                    },
                },
            }
        ],
        "tool_choice": "required",
    },
}


def peer_template(cfg: MixserveConfig, spec: SpecialistConfig) -> str:
    """The chat template `vllm serve` (the peer) renders ``spec``'s requests with: the
    specialist's own, its system prompt put in first (mixserve adds it as a message; the
    peer's clients send none), so both sides give the model the same prompt."""
    text = cfg.chat_template(spec)
    if text is None:
        raise ValueError(f"specialist {spec.name} names no chat_template to give the peer")
    if not spec.system_prompt:
        return text
    lead = json.dumps(spec.system_prompt, ensure_ascii=False)
    return f"{{%- set messages = [{{'role': 'system', 'content': {lead}}}] + messages -%}}\n" + text
