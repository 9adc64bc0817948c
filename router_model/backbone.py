"""Query embeddings from a small causal LM: mean-pooled hidden states of one layer.

Only the first ``layer`` decoder layers are kept and run (early exit): the layers past the
one we pool cannot change it, so dropping them cuts cost in proportion. The first token
(``<bos>``) is excluded from the mean: decoder LMs park huge activations on it (an
attention sink) that would otherwise dominate every query's vector.

For a per-query early exit the decoder can also run in two stages (``embed_until``, then
its ``Stage.rest``): the first ``k`` layers for a whole batch, then the remaining layers
only for the rows that still need them, continuing from the stage's hidden states. Both stages
share the loaded weights; the two-stage result equals one full pass.

The backbone runs in bfloat16 by default and, with ``compile=True``, under
``torch.compile`` with dynamic shapes; batches are padded to a few lengths (never past
the token limit) to bound padding. A ``BackboneSpec`` names everything that changes the
embedding; a router artifact records it and refuses to load under a different one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weights import source_checksum

logger = logging.getLogger(__name__)
LENGTH_BUCKETS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass(frozen=True)
class BackboneSpec:
    """What an embedding depends on: weights, depth, truncation and precision."""

    weights: str
    layer: int
    max_tokens: int
    dtype: str

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        return (
            f"weights {self.weights[:12]}, layer {self.layer}, "
            f"{self.max_tokens} tokens, {self.dtype}"
        )


def weights_identity(model_dir: str | Path) -> str:
    """The prepared weights' source checksum, or a hash of the config and weight sizes."""
    folder = Path(model_dir)
    prepared = source_checksum(folder)
    if prepared is not None:
        return prepared
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*")):
        if path.suffix in (".json", ".safetensors", ".bin"):
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Stage:
    """A batch after its first ``layer`` layers: pooled rows, and how to run on."""

    pooled: np.ndarray
    rest: Callable[[list[int]], np.ndarray]  # row indices -> pooled rows at the last layer


def _part(decoder: Any, first: int, last: int) -> Any:
    """A view of ``decoder`` running only its layers ``first..last-1`` (same weights)."""
    import torch

    part = copy.copy(decoder)
    part._modules = dict(decoder._modules)  # its own module table; the modules are shared
    part.layers = torch.nn.ModuleList(list(decoder.layers)[first:last])
    part.config = copy.copy(decoder.config)
    part.config.num_hidden_layers = last - first
    if getattr(decoder.config, "layer_types", None):
        part.config.layer_types = list(decoder.config.layer_types)[first:last]
    return part


def _bucket(length: int) -> int:
    for size in LENGTH_BUCKETS:
        if length <= size:
            return size
    return length


class HiddenStateEmbedder:
    def __init__(
        self,
        model_dir: str | Path,
        layer: int,
        max_tokens: int = 128,
        *,
        dtype: str = "float32",
        compile: bool = False,
    ) -> None:
        from router_model.precision import resolve_dtype

        dtype = resolve_dtype(dtype)  # auto: from this machine's CPU
        self.model_dir = str(model_dir)
        self.spec = BackboneSpec(weights_identity(model_dir), layer, max_tokens, dtype)
        self.compile = compile
        self.bos = ""
        self._model: Any = None
        self._forward: Any = None
        self._tokenizer: Any = None
        self._stages: dict[int, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._pooling: Any = None  # kernels.MaskedMeanPool, for the states' device, at first use

    @property
    def layer(self) -> int:
        return self.spec.layer

    def load(self) -> None:
        import torch
        from threadpoolctl import threadpool_limits
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # The heads' numpy BLAS threads would otherwise spin against torch's OpenMP threads
        # for the same cores: measured 16 ms → 7 ms per routed query on 2 cores.
        threadpool_limits(limits=1, user_api="blas")

        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        dtype = getattr(torch, self.spec.dtype)
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        decoder = model.model
        total = len(decoder.layers)
        if self.layer > total:
            raise ValueError(f"router layer is {self.layer} but the model has {total} layers")
        decoder.layers = decoder.layers[: self.layer]
        decoder.config.num_hidden_layers = self.layer
        if getattr(decoder.config, "layer_types", None):
            decoder.config.layer_types = decoder.config.layer_types[: self.layer]
        decoder.norm = torch.nn.Identity()  # pool the raw residual stream of the last layer
        decoder.eval()
        self.bos = tokenizer.bos_token or ""  # its huge activations are left out of the mean
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self._model = decoder
        self._forward = decoder
        if self.compile:
            self.compile_now()

    def compile_now(self) -> None:
        """Compile the loaded model (falls back to eager, with a warning, if that fails)."""
        compiled = self._compiled(self._model)
        try:
            self._forward = compiled
            self.embed(["warm up the compiled router"])
        except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to eager
            logger.warning("torch.compile failed (%s); the router runs eagerly", exc)
            self._forward = self._model

    @staticmethod
    def _compiled(module: Any) -> Any:
        import torch
        import torch._inductor.config as inductor

        # freezing folds the (inference-only) weights into the graph and prepacks them for
        # oneDNN: about 10% faster per query on CPU than plain compile here
        inductor.freezing = True
        # dynamic shapes: one graph for every batch size and length (no recompiles)
        return torch.compile(module, dynamic=True)

    def add_stage(self, layer: int, compile: bool = False) -> None:
        """Prepare the two-stage pass that stops after ``layer`` layers (both stages under
        ``torch.compile`` with ``compile``); ``embed_until(texts, layer)`` needs it."""
        if self._model is None:
            raise RuntimeError("embedder not loaded")
        if not 1 <= layer < self.layer:
            raise ValueError(f"an early exit must lie in 1..{self.layer - 1}, not {layer}")
        front, back = _part(self._model, 0, layer), _part(self._model, layer, self.layer)
        self._stages[layer] = (front, back)
        if compile:
            try:
                self._stages[layer] = (self._compiled(front), self._compiled(back))
                self.embed_until(["warm up the compiled router"], layer).rest([0])
            except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to eager
                logger.warning("torch.compile failed (%s); the early exit runs eagerly", exc)
                self._stages[layer] = (front, back)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def decoder(self) -> Any:
        """The truncated decoder (first ``layer`` layers, no final norm), e.g. to fine-tune."""
        if self._model is None:
            raise RuntimeError("embedder not loaded")
        return self._model

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text as the router reads it: ``<bos>`` plus at most ``max_tokens`` tokens."""
        if self._tokenizer is None:
            raise RuntimeError("embedder not loaded")
        return [
            self._tokenizer(
                self.bos + t,
                add_special_tokens=False,
                truncation=True,
                max_length=self.spec.max_tokens + 1,
            )["input_ids"]
            for t in texts
        ]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return one float32 row per text (not normalized)."""
        return self._run(texts, None)[self.layer]

    def embed_layers(self, texts: list[str], layers: list[int]) -> dict[int, np.ndarray]:
        """Pooled states of several layers (each at most ``layer``) from one forward pass."""
        if any(not 1 <= n <= self.layer for n in layers):
            raise ValueError(f"layers must lie in 1..{self.layer}")
        return self._run(texts, layers)

    def embed_until(self, texts: list[str], layer: int) -> Stage:
        """Pooled states after ``layer`` layers; ``rest(rows)`` runs those rows on through
        the remaining layers and returns their pooled states at ``self.layer``."""
        import torch

        if layer not in self._stages:
            raise RuntimeError(f"no early exit prepared at layer {layer} (add_stage)")
        front, back = self._stages[layer]
        input_ids, mask = self._batch(texts)
        with self._lock, torch.inference_mode():
            hidden = front(input_ids=input_ids, attention_mask=mask, use_cache=False)
        hidden = hidden.last_hidden_state

        def rest(rows: list[int]) -> np.ndarray:
            index = torch.tensor(rows, dtype=torch.long)
            with self._lock, torch.inference_mode():
                out = back(inputs_embeds=hidden[index], attention_mask=mask[index], use_cache=False)
            return self._pool(out.last_hidden_state, mask[index])

        return Stage(self._pool(hidden, mask), rest)

    def _batch(self, texts: list[str]) -> tuple[Any, Any]:
        """Token ids padded to a bucketed width, and their attention mask."""
        import torch

        if self._model is None:
            raise RuntimeError("embedder not loaded")
        ids = self.token_ids(texts)
        # never pad past the longest input allowed (max_tokens plus <bos>)
        width = min(_bucket(max(len(row) for row in ids)), self.spec.max_tokens + 1)
        input_ids = torch.full((len(ids), width), int(self._tokenizer.pad_token_id))
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return input_ids, mask

    def _pool(self, hidden: Any, mask: Any) -> np.ndarray:
        """Mean over each row's tokens, ``<bos>`` left out, as float32."""
        if self._pooling is None:
            from kernels import MaskedMeanPool

            self._pooling = MaskedMeanPool(device=str(hidden.device))
        if self.bos:
            mask = mask.clone()
            mask[:, 0] = 0
        return np.asarray(self._pooling(hidden, mask).numpy(), dtype=np.float32)

    def _run(self, texts: list[str], layers: list[int] | None) -> dict[int, np.ndarray]:
        import torch

        input_ids, mask = self._batch(texts)
        with self._lock, torch.inference_mode():
            if layers is None:
                out = self._forward(input_ids=input_ids, attention_mask=mask, use_cache=False)
                states = {self.layer: out.last_hidden_state}
            else:
                out = self._model(
                    input_ids=input_ids,
                    attention_mask=mask,
                    use_cache=False,
                    output_hidden_states=True,
                )
                states = {n: out.hidden_states[n] for n in layers}
        return {n: self._pool(h, mask) for n, h in states.items()}
