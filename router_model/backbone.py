"""Query embeddings from a small causal LM: mean-pooled hidden states of one layer.

Only the first ``layer`` decoder layers are kept and run (early exit): the layers past the
one we pool cannot change it, so dropping them cuts cost in proportion. The first token
(``<bos>``) is excluded from the mean: decoder LMs park huge activations on it (an
attention sink) that would otherwise dominate every query's vector.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np


class HiddenStateEmbedder:
    def __init__(
        self, model_dir: str | Path, layer: int, max_tokens: int = 128, bos: str = "<bos>"
    ) -> None:
        self.model_dir = str(model_dir)
        self.layer = layer
        self.max_tokens = max_tokens
        self.bos = bos
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32)
        decoder = model.model
        total = len(decoder.layers)
        if self.layer > total:
            raise ValueError(f"router.layer is {self.layer} but the model has {total} layers")
        decoder.layers = decoder.layers[: self.layer]
        decoder.config.num_hidden_layers = self.layer
        if getattr(decoder.config, "layer_types", None):
            decoder.config.layer_types = decoder.config.layer_types[: self.layer]
        decoder.eval()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        self._tokenizer = tokenizer
        self._model = decoder

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return one float32 row per text (not normalized)."""
        import torch

        if self._model is None:
            raise RuntimeError("embedder not loaded")
        prompts = [self.bos + t for t in texts]
        batch = self._tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_tokens + 1,
            add_special_tokens=False,
        )
        captured: dict[str, Any] = {}

        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            captured["h"] = output[0] if isinstance(output, tuple) else output

        handle = self._model.layers[self.layer - 1].register_forward_hook(hook)
        try:
            with self._lock, torch.inference_mode():
                self._model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    use_cache=False,
                )
        finally:
            handle.remove()
        hidden = captured["h"].float()
        mask = batch["attention_mask"].clone().float()
        mask[:, 0] = 0.0  # drop <bos>
        mask = mask.unsqueeze(-1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return pooled.numpy().astype(np.float32)
