"""A specialist's conversation as OpenAI chat messages, for the model's chat template.

The configured system prompt and the conversation's own system messages become one
leading system message (templates such as Gemma's take only one, first); retrieved
passages open the last user turn, before its text: everything before that (system
prompt, the conversation so far) is the same from one request to the next of a
conversation, and across conversations up to the first user turn, so the engine's prefix
cache keeps it whatever passages a question brings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def grounding_block(passages: Sequence[tuple[str, str]]) -> str:
    """Passages as ``(source, text)`` pairs, numbered so the model can cite them."""
    if not passages:
        return ""
    lines = ["Use these passages if they help; cite them as [n]."]
    for i, (source, text) in enumerate(passages, 1):
        lines.append(f"[{i}] ({source}) {text.strip()}")
    return "\n".join(lines)


def chat_messages(
    system: str,
    turns: Sequence[tuple[str, str] | Mapping[str, Any]],
    passages: Sequence[tuple[str, str]] = (),
    continuation: str = "",
) -> list[dict[str, Any]]:
    """``turns`` as (role, text) pairs, or OpenAI messages with text content (an
    assistant's ``tool_calls``, a tool result's ``tool_call_id``), with roles system,
    user, assistant and tool; with ``continuation``, a last assistant message holding an
    answer's start, for the engine to go on from."""
    messages = [
        dict(t) if isinstance(t, Mapping) else {"role": t[0], "content": t[1]} for t in turns
    ]
    lead = "\n\n".join(
        p for p in (system, *(m["content"] for m in messages if m["role"] == "system")) if p
    )
    out = [{"role": "system", "content": lead}] if lead else []
    out += [m for m in messages if m["role"] != "system"]
    block = grounding_block(passages)
    if block:
        last = max((i for i, m in enumerate(out) if m["role"] == "user"), default=None)
        if last is None:
            out.append({"role": "user", "content": block})
        else:
            out[last] = {"role": "user", "content": f"{block}\n\n{out[last]['content']}"}
    if continuation:
        out.append({"role": "assistant", "content": continuation})
    return out
