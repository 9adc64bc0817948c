"""Chat prompt formats: messages (plus retrieved passages) to one prompt string.

Gemma's converted tokenizer does not add ``<bos>``; without it Gemma 3 produces garbage,
so the Gemma format writes it itself and engines must not add special tokens again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    role: str  # "system" | "user" | "assistant"
    content: str


def grounding_block(passages: Sequence[tuple[str, str]]) -> str:
    """Passages as ``(source, text)`` pairs, numbered so the model can cite them."""
    if not passages:
        return ""
    lines = ["Use these passages if they help; cite them as [n]."]
    for i, (source, text) in enumerate(passages, 1):
        lines.append(f"[{i}] ({source}) {text.strip()}")
    return "\n".join(lines)


def _preamble(system: str, turns: Sequence[Turn]) -> str:
    """Configured instructions and the conversation's system turns, joined."""
    parts = (system, *(t.content for t in turns if t.role == "system"))
    return "\n\n".join(p for p in parts if p)


def _fold_system(system: str, turns: Sequence[Turn]) -> list[Turn]:
    """Formats without a system role put instructions before the first user turn."""
    preamble = _preamble(system, turns)
    out = [t for t in turns if t.role != "system"]
    if preamble:
        if out and out[0].role == "user":
            out[0] = Turn("user", f"{preamble}\n\n{out[0].content}")
        else:
            out.insert(0, Turn("user", preamble))
    return out


def gemma(system: str, turns: Sequence[Turn]) -> str:
    parts = ["<bos>"]
    for turn in _fold_system(system, turns):
        role = "model" if turn.role == "assistant" else "user"
        parts.append(f"<start_of_turn>{role}\n{turn.content}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


def gemma_base(system: str, turns: Sequence[Turn]) -> str:
    """A completion layout for base (not instruction-tuned) models: Question/Answer turns."""
    parts = ["<bos>"]
    lead = _preamble(system, turns)
    if lead:
        parts.append(lead + "\n\n")
    for turn in turns:
        if turn.role == "user":
            parts.append(f"Question: {turn.content}\n")
        elif turn.role == "assistant":
            parts.append(f"Answer: {turn.content}\n\n")
    parts.append("Answer:")
    return "".join(parts)


def chatml(system: str, turns: Sequence[Turn]) -> str:
    parts = [f"<|im_start|>system\n{system}<|im_end|>\n"] if system else []
    for turn in turns:
        parts.append(f"<|im_start|>{turn.role}\n{turn.content}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def llama3(system: str, turns: Sequence[Turn]) -> str:
    """Llama 3.x instruct: header-delimited turns, each ended by ``<|eot_id|>``."""
    sys_text = _preamble(system, turns)
    parts = ["<|begin_of_text|>"]
    if sys_text:
        parts.append(f"<|start_header_id|>system<|end_header_id|>\n\n{sys_text}<|eot_id|>")
    for turn in turns:
        if turn.role != "system":
            head = f"<|start_header_id|>{turn.role}<|end_header_id|>\n\n"
            parts.append(f"{head}{turn.content}<|eot_id|>")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def plain(system: str, turns: Sequence[Turn]) -> str:
    lines = [system] if system else []
    lines += [f"{t.role.capitalize()}: {t.content}" for t in turns]
    lines.append("Assistant:")
    return "\n\n".join(lines)


FORMATS: dict[str, Callable[[str, Sequence[Turn]], str]] = {
    "gemma": gemma,
    "gemma_base": gemma_base,
    "chatml": chatml,
    "llama3": llama3,
    "plain": plain,
}

STOP_STRINGS: dict[str, list[str]] = {
    "gemma": ["<end_of_turn>"],
    "gemma_base": ["\nQuestion:"],
    "chatml": ["<|im_end|>"],
    "llama3": ["<|eot_id|>"],
    "plain": ["\nUser:"],
}


def render(
    fmt: str, system: str, turns: Sequence[Turn], passages: Sequence[tuple[str, str]]
) -> str:
    """The prompt. Passages open the last user turn, before its text: everything before
    that (system prompt, the conversation so far) is the same from one request to the
    next of a conversation, and across conversations up to the first user turn, so the
    engine's prefix cache keeps it whatever passages a question brings."""
    block = grounding_block(passages)
    if block:
        last = max((i for i, t in enumerate(turns) if t.role == "user"), default=None)
        turns = list(turns)
        if last is None:
            turns.append(Turn("user", block))
        else:
            turns[last] = Turn("user", f"{block}\n\n{turns[last].content}")
    return FORMATS[fmt](system, turns)
