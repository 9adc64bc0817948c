"""vLLM's own OpenAI serving layer over one engine (``OpenAIServingChat`` and its
siblings, built by ``init_app_state`` as ``vllm serve`` builds them): chat templates,
structured outputs, log-probabilities and penalties are vLLM's code, not ours.

The layer serves the engine's specialists under their own names (a specialist with a
LoRA adapter is that adapter's name, so vLLM picks the adapter by the request's model).
Requests carry their specialist's chat template (the layer trusts request templates;
clients cannot send one, the gateway refuses the parameter). Every call streams, with
usage on every chunk, so that token counts are known as the answer goes (a lost replica's
answer resumes from them) and a client that leaves aborts the generation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from specialists.engine import Chunk, GenerationRequest
from specialists.errors import ContextLengthError, EngineRequestError
from specialists.stops import StopScanner


async def build_layer(
    engine: Any,
    model: str,
    names: list[str],
    adapters: dict[str, str],
    tool_parser: str | None = None,
    tool_strict_level: str = "auto",
) -> Any:
    """vLLM's serving state (a starlette ``State``) over a started ``AsyncLLM``: the
    frontend arguments are ``vllm serve``'s defaults, plus the served names, LoRA
    modules and tool parser given here (``--enable-auto-tool-choice --tool-call-parser``)."""
    from starlette.datastructures import State
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.entrypoints.openai.api_server import init_app_state
    from vllm.entrypoints.openai.models.protocol import LoRAModulePath
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", model])
    args.served_model_name = names
    args.trust_request_chat_template = True  # the specialist's template, set by its replica
    args.enable_prompt_tokens_details = True  # cached prompt tokens, for usage and cost
    args.lora_modules = [LoRAModulePath(name, path) for name, path in adapters.items()] or None
    if tool_parser is not None:
        args.enable_auto_tool_choice = True
        args.tool_call_parser = tool_parser
        args.tool_strict_level = tool_strict_level
    state = State()
    await init_app_state(engine, state, args, supported_tasks=await engine.get_supported_tasks())
    return state


def chat_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The OpenAI chat request vLLM's layer runs for ``request`` (streamed, usage on every
    chunk); an answer cut short elsewhere goes on from its text (``continuation``, the
    last assistant message continued)."""
    messages = list(request.messages)
    if request.continuation:
        messages.append({"role": "assistant", "content": request.continuation})
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_completion_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop or None,
        # vLLM would hold back the last characters of the text at every step, token or
        # not (specialists.stops): it sends them, and the stop string is cut off here, so
        # that pieces end on tokens and a continued answer re-reads the same tokens
        "include_stop_str_in_output": bool(request.stop),
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "logit_bias": request.logit_bias,
        "response_format": request.response_format,
        "chat_template": request.chat_template,
        "request_id": request.request_id,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "n": request.n if request.n > 1 else None,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    if request.logprobs or request.top_logprobs is not None:
        body["logprobs"] = True
        body["top_logprobs"] = request.top_logprobs or 0
    if request.continuation:
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    return {k: v for k, v in body.items() if v is not None}  # unset: vLLM's defaults


CHAT_ONLY = (
    "messages",
    "chat_template",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "continue_final_message",
    "add_generation_prompt",
    "max_completion_tokens",
    "top_logprobs",
)


def completion_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The legacy completion request vLLM's layer runs for a raw ``request.prompt``."""
    body = chat_body(request, model)
    for chat_only in CHAT_ONLY:
        body.pop(chat_only, None)
    body["prompt"] = (request.prompt or "") + request.continuation
    body["max_tokens"] = request.max_tokens
    if body.pop("logprobs", False):  # the completions API's: alternatives per token
        body["logprobs"] = request.top_logprobs or 0
    return body


def chat_entries(logprobs: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A completion chunk's log-probabilities (parallel lists) as chat entries, the one
    form the rest of mixserve reads."""
    if not logprobs:
        return []
    out = []
    tops = logprobs.get("top_logprobs") or [None] * len(logprobs["tokens"])
    for token, value, top in zip(logprobs["tokens"], logprobs["token_logprobs"], tops, strict=True):
        others = [
            {"token": t, "logprob": float(v), "bytes": list(t.encode())}
            for t, v in (top or {}).items()
        ]
        entry = {"token": token, "logprob": float(value), "bytes": list(token.encode())}
        out.append({**entry, "top_logprobs": others})
    return out


def _rejected(error: dict[str, Any], body: dict[str, Any]) -> Exception:
    """vLLM's error body as the engine error the gateway maps to an HTTP answer (a
    grammar vLLM cannot build from a JSON schema names no parameter: it is the format's)."""
    message = str(error.get("message") or "the engine refused the request")
    if "context length" in message or "maximum context" in message:
        return ContextLengthError(message)
    code = error.get("code")
    status = int(code) if isinstance(code, int) else 400
    param = error.get("param")
    if param is None and body.get("response_format") and "rammar" in message:
        param = "response_format"
    return EngineRequestError(message, status=status, param=param)


async def chat_chunks(
    serving: Any, body: dict[str, Any], per_token: bool = False, legacy: bool = False
) -> AsyncIterator[Chunk]:
    """Run ``body`` through vLLM's ``OpenAIServingChat`` (``legacy``: its
    ``OpenAIServingCompletion``) and read its server-sent events back as ``Chunk``s, with
    each token's log-probability entries when ``per_token``. Closing this stream closes
    vLLM's, which aborts the request in the engine."""
    from vllm.exceptions import VLLMClientError

    try:
        if legacy:
            from vllm.entrypoints.openai.completion.protocol import CompletionRequest

            out = await serving.create_completion(CompletionRequest.model_validate(body), None)
        else:
            from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

            request = ChatCompletionRequest.model_validate(body)
            out = await serving.create_chat_completion(request, None)
    except (ValueError, VLLMClientError) as exc:  # vLLM's validation of the request
        error = serving.create_error_response(exc).error
        raise _rejected(error.model_dump(), body) from None
    if not hasattr(out, "__aiter__"):  # an ErrorResponse
        raise _rejected(out.error.model_dump(), body)
    asked = body.get("logprobs")
    logprob = 0.0 if asked is not None and asked is not False else None
    prompt_tokens = completion_tokens = cached = 0
    n = int(body.get("n") or 1)
    entries = [TokenEntries() for _ in range(n)]
    stops = [StopScanner(body.get("stop") or ()) for _ in range(n)]
    ended: set[int] = set()
    sent = (0, 0, 0)  # the token counts last yielded
    try:
        async for event in out:
            data = event[len("data: ") :].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if "error" in chunk:
                raise _rejected(chunk["error"], body)
            usage = chunk.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens", prompt_tokens))
            completion_tokens = int(usage.get("completion_tokens", completion_tokens))
            details = usage.get("prompt_tokens_details") or {}
            cached = int(details.get("cached_tokens") or cached)
            choices = chunk.get("choices") or ()
            counts = (prompt_tokens, completion_tokens, cached)
            # the closing usage, when it says more than the last chunk did: the cached
            # prompt tokens, and with n choices every choice's tokens (the chunks of a
            # choice count only its own)
            if not choices and counts != sent:
                sent = counts
                yield Chunk("", prompt_tokens, completion_tokens, None, logprob, cached)
            for choice in choices:
                index = int(choice.get("index") or 0)
                if index in ended:  # its stop string was found: vLLM stops there too; the
                    continue  # stream is read to its end for the usage (cached tokens)
                if legacy:  # a completion chunk: its text, its log-probabilities as lists
                    new = chat_entries(choice.get("logprobs"))
                    choice = {**choice, "delta": {"content": choice.get("text") or ""}}
                else:
                    new = (choice.get("logprobs") or {}).get("content") or []
                if logprob is not None:
                    logprob += sum(float(e["logprob"]) for e in new)
                delta = choice.get("delta") or {}
                calls = delta.get("tool_calls") or None
                text, stopped = stops[index].feed(delta.get("content") or "")
                finish = "stop" if stopped else choice.get("finish_reason")
                if finish is not None and not stopped:
                    text += stops[index].flush()
                ready = entries[index].feed(new, text, finish is not None, stopped)
                if finish is not None:
                    ended.add(index)
                if not text and finish is None and not ready and not calls:
                    continue
                sent = (prompt_tokens, completion_tokens, cached)
                yield Chunk(
                    text,
                    prompt_tokens,
                    completion_tokens,
                    finish,
                    logprob,
                    cached,
                    logprobs=ready if per_token else None,
                    tool_calls=calls,
                    index=index,
                )
    finally:
        await out.aclose()


class TokenEntries:
    """Log-probability entries released as the text they spell is: vLLM lists the tokens
    of a stop string too, whose text is held back and then cut, so an entry goes out once
    the answer's text reaches past it; when the answer ends, those left go out too, unless
    a stop string was cut (they are its tokens). Entries are OpenAI's: ``token`` is the
    token's text."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.text = 0  # characters of answer text so far
        self.spelled = 0  # characters the released entries spell

    def feed(
        self, new: list[dict[str, Any]], text: str, last: bool, cut: bool = False
    ) -> list[dict[str, Any]]:
        self.pending += new
        self.text += len(text)
        out = []
        while self.pending and self.spelled + len(self.pending[0]["token"]) <= self.text:
            entry = self.pending.pop(0)
            self.spelled += len(entry["token"])
            out.append(entry)
        if last:  # a token whose text is not its characters (a byte of one) goes out here
            out += [] if cut else self.pending
            self.pending = []
        return out
