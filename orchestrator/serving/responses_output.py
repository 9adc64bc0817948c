"""What ``POST /v1/responses`` answers: a ``response`` object whose output is the
assistant's message and its function calls (``function_call`` items), or the Responses
API's streamed events: ``response.created``; per output item, ``output_item.added``,
its text deltas (``output_text.delta``) or arguments deltas
(``function_call_arguments.delta``) and their ``.done``; ``response.completed`` (or
``incomplete``) with the usage last."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orchestrator.serving.plan import add_call

if TYPE_CHECKING:
    from orchestrator.serving.responses import ResponsesRequest


def message_item(rid: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": f"msg_{rid}",
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def call_item(rid: str, index: int, call: dict[str, Any], status: str) -> dict[str, Any]:
    """A chat tool call (``id``, ``function.name``, ``function.arguments``) as the
    Responses API's ``function_call`` output item."""
    return {
        "type": "function_call",
        "id": f"fc_{rid}_{index}",
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"] if status == "completed" else "",
        "status": status,
    }


def output_items(rid: str, text: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The message (left out when the answer is only calls), then each call."""
    items = [message_item(rid, text)] if text or not calls else []
    return items + [call_item(rid, i, c, "completed") for i, c in enumerate(calls)]


def response_object(
    rid: str,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    meta: dict[str, Any] | None,
    body: ResponsesRequest,
) -> dict[str, Any]:
    """A ``response`` object: the request's settings echoed, its output, its usage."""
    out: dict[str, Any] = {
        "id": f"resp_{rid}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        **body.echoed(),
        "error": None,
        "incomplete_details": None,
        "usage": None,
    }
    if status == "incomplete":
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    if usage is not None:
        out["usage"] = {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {
                "cached_tokens": usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
            },
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"],
            "cost": usage.get("cost"),
        }
    if meta is not None:
        out["mixserve"] = meta
    return out


def status_of(finish_reason: str | None) -> str:
    return "incomplete" if finish_reason == "length" else "completed"


class ResponseShape:
    """The streamed events of one response. An output item opens when its first piece
    arrives (the message with its first text, a function call with its name), so an
    answer that is only calls streams no empty message."""

    prefix = "resp"

    def __init__(self, body: ResponsesRequest) -> None:
        self.body = body
        self.text = ""
        self.sequence = 0
        self.message_at: int | None = None  # the message's output index, once open
        self.calls: list[dict[str, Any]] = []  # whole, as they add up
        self.call_at: dict[int, int] = {}  # a call's index -> its output index
        self.opened = 0  # output items opened so far

    def opening(self) -> dict[str, Any]:
        return {"content": ""}

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.sequence += 1
        return {"type": kind, "sequence_number": self.sequence - 1, **fields}

    def chunk(
        self,
        cid: str,
        model: str,
        created: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        extra: dict[str, Any] | None = None,
        logprobs: list[dict[str, Any]] | None = None,
        index: int = 0,
    ) -> list[dict[str, Any]]:
        rid = cid.removeprefix("resp-")
        extra = extra or {}
        if "mixserve" in extra and "usage" not in extra:  # the opening
            started = response_object(
                rid, model, "in_progress", [], None, extra["mixserve"], self.body
            )
            return [
                self._event("response.created", response=started),
                self._event("response.in_progress", response=started),
            ]
        if "usage" in extra:
            return self._closing(rid, model, finish_reason, extra)
        events = self._text(rid, str(delta.get("content") or ""))
        for piece in delta.get("tool_calls") or ():
            events += self._call(rid, piece)
        return events

    def _text(self, rid: str, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events = [] if self.message_at is not None else self._open_message(rid)
        self.text += text
        where = {"item_id": f"msg_{rid}", "output_index": self.message_at}
        delta = self._event(
            "response.output_text.delta", **where, content_index=0, delta=text, logprobs=[]
        )
        return [*events, delta]

    def _open_message(self, rid: str) -> list[dict[str, Any]]:
        self.message_at, self.opened = self.opened, self.opened + 1
        where = {"item_id": f"msg_{rid}", "output_index": self.message_at}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item = message_item(rid, "", "in_progress")
        return [
            self._event("response.output_item.added", output_index=self.message_at, item=item),
            self._event("response.content_part.added", **where, content_index=0, part=part),
        ]

    def _call(self, rid: str, piece: dict[str, Any]) -> list[dict[str, Any]]:
        index = int(piece.get("index", len(self.calls)))
        add_call(self.calls, piece)
        events = []
        if index not in self.call_at:
            self.call_at[index], self.opened = self.opened, self.opened + 1
            item = call_item(rid, index, self.calls[index], "in_progress")
            events.append(
                self._event(
                    "response.output_item.added", output_index=self.call_at[index], item=item
                )
            )
        arguments = (piece.get("function") or {}).get("arguments") or ""
        if arguments:
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=f"fc_{rid}_{index}",
                    output_index=self.call_at[index],
                    delta=arguments,
                )
            )
        return events

    def _closing(
        self, rid: str, model: str, finish_reason: str | None, extra: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Each open item done, in output order, then the response."""
        events: list[dict[str, Any]] = []
        if self.message_at is None and not self.calls:  # nothing said: an empty message
            events += self._open_message(rid)
        done: dict[int, dict[str, Any]] = {}
        if self.message_at is not None:
            where = {"item_id": f"msg_{rid}", "output_index": self.message_at}
            item = message_item(rid, self.text)
            events += [
                self._event(
                    "response.output_text.done", **where, content_index=0, text=self.text,
                    logprobs=[],
                ),
                self._event(
                    "response.content_part.done", **where, content_index=0,
                    part=item["content"][0],
                ),
            ]  # fmt: skip
            done[self.message_at] = item
        for index, at in self.call_at.items():
            item = call_item(rid, index, self.calls[index], "completed")
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=at,
                    arguments=item["arguments"],
                )
            )
            done[at] = item
        for at in sorted(done):
            events.append(self._event("response.output_item.done", output_index=at, item=done[at]))
        output = [done[at] for at in sorted(done)]
        status = status_of(finish_reason)
        response = response_object(
            rid, model, status, output, extra["usage"], extra.get("mixserve"), self.body
        )
        return [*events, self._event(f"response.{status}", response=response)]
