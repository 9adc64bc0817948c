"""Sentence embeddings from an offline model package (all-MiniLM-L6-v2 by default).

Two precisions, the same model: ``fp32`` runs sentence-transformers as shipped; ``int8``
runs the model's transformer exported to ONNX, its graph fused by ONNX Runtime's
transformer optimizer (one Attention, SkipLayerNormalization and BiasGelu kernel each
where the model is BERT-shaped), with int8 weights (ONNX Runtime's dynamic quantization,
per output channel, in 7 bits: this CPU has no VNNI, and the 8-bit u8 x s8 products
saturate its 16-bit sums). The feed-forward output projections stay fp32: quantizing
those moved embeddings furthest from fp32 (measured: cosine to fp32 0.984 at worst with
them int8, 0.992 without). Tokenization, pooling and normalisation are the model's own,
read from its sentence-transformers modules, in both precisions.

The int8 model is built once per model package version (``prepare``) under the cache
folder, written atomically with its checksum, and rebuilt if the file does not match it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from weights import file_sha256

logger = logging.getLogger(__name__)
Precision = Literal["int8", "fp32"]
RECIPE = 2  # how the int8 model is made; a cached model of another recipe is remade
_POOLING = {"mean", "cls", "max"}
_BERT_SHAPED = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert"}


class Embedder:
    parallel = 1  # batches it embeds at once (``ClusterEmbedder``: one per worker)

    def __init__(
        self,
        package: str,
        precision: Precision = "int8",
        max_tokens: int = 256,
        cache_dir: Path | None = None,
        threads: int = 0,
    ) -> None:
        self.package = package
        self.precision = precision
        self.max_tokens = max_tokens
        self.cache_dir = cache_dir or Path.home() / ".cache" / "mixserve"
        self.threads = threads  # 0: the runtime's own choice
        self._st: Any = None
        self._session: Any = None
        self._pooling = "mean"
        self._normalize = True
        self._lock = threading.Lock()

    # -- identity --------------------------------------------------------------------
    @property
    def model_version(self) -> str:
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    def identity(self) -> dict[str, Any]:
        """What a collection's vectors depend on; stored in its manifest and compared
        when it is opened, so vectors are never searched with another model's queries."""
        return {
            "package": self.package,
            "version": self.model_version,
            "precision": self.precision,
            "dim": self.dim,
            "pooling": self._pooling,
            "normalize": self._normalize,
            "max_tokens": self.max_tokens,
            **({"int8_recipe": RECIPE} if self.precision == "int8" else {}),
        }

    @property
    def dim(self) -> int:
        if self._st is None:
            raise RuntimeError("embedder not loaded")
        return int(self._st.get_embedding_dimension())

    # -- loading ---------------------------------------------------------------------
    def model_path(self) -> Path:
        try:
            module = importlib.import_module(self.package.replace("-", "_"))
        except ImportError as exc:
            raise RuntimeError(f"embedding package {self.package!r} is not installed") from exc
        return Path(module.get_model_path())

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        self._st = SentenceTransformer(str(self.model_path()), device="cpu", local_files_only=True)
        self._st.max_seq_length = min(self.max_tokens, self._st.max_seq_length or 512)
        self._pooling, self._normalize = _pooling_of(self._st)
        if self.precision == "int8":
            if self._pooling not in _POOLING:
                raise RuntimeError(
                    f"{self.package}: int8 embeds with mean, cls or max pooling; this model "
                    f"pools by {self._pooling!r} (set precision: fp32)"
                )
            self._session = _session(self.prepare(), self.threads)

    def prepare(self) -> Path:
        """The int8 ONNX model, exported and quantized now if not already there."""
        folder = self.cache_dir / "embedders" / f"{self.package}-{self.model_version}"
        target = folder / "model.int8.onnx"
        meta = folder / "model.int8.json"
        if target.exists() and meta.exists():
            try:
                made = json.loads(meta.read_text())
                if made.get("recipe") == RECIPE and file_sha256(target) == made["sha256"]:
                    return target
            except (OSError, ValueError, KeyError):
                pass
            logger.warning("%s is stale or does not match its checksum; remaking it", target)
        _export_int8(self.model_path(), folder, target, meta)
        return target

    # -- embedding -------------------------------------------------------------------
    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the encoder reads of ``texts`` (each cut at its window, as embedded)."""
        if self._st is None:
            raise RuntimeError("embedder not loaded")
        window = int(self._st.max_seq_length)
        ids = self._st.tokenizer(texts, truncation=True, max_length=window)["input_ids"]
        return sum(len(row) for row in ids)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One float32 row per text (unit length when the model normalises, so inner
        product is cosine similarity)."""
        if self._st is None:
            raise RuntimeError("embedder not loaded")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if self._session is None:
                vectors = self._st.encode(
                    texts,
                    batch_size=batch_size,
                    normalize_embeddings=False,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                return np.asarray(vectors, dtype=np.float32)
            return self._embed_int8(texts, batch_size)

    def _embed_int8(self, texts: list[str], batch_size: int) -> np.ndarray:
        tokenizer = self._st.tokenizer
        names = {i.name for i in self._session.get_inputs()}
        order = np.argsort([len(t) for t in texts], kind="stable")  # little padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            rows = order[i : i + batch_size]
            enc = tokenizer(
                [texts[j] for j in rows],
                padding=True,
                truncation=True,
                max_length=self._st.max_seq_length,
                return_tensors="np",
            )
            feed = {k: v.astype(np.int64) for k, v in enc.items() if k in names}
            hidden = self._session.run(None, feed)[0]
            out[rows] = _pool(hidden, enc["attention_mask"], self._pooling)
        if self._normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _pooling_of(st: Any) -> tuple[str, bool]:
    from sentence_transformers.models import Normalize, Pooling

    pooling, normalize = "mean", False
    for module in st:
        if isinstance(module, Pooling):
            config = module.get_config_dict()
            pooling = str(config.get("pooling_mode") or _legacy_mode(config))
        if isinstance(module, Normalize):
            normalize = True
    return pooling, normalize


def _legacy_mode(config: dict[str, Any]) -> str:
    for mode in ("cls", "max", "mean"):
        if config.get(f"pooling_mode_{mode}_token") or config.get(f"pooling_mode_{mode}_tokens"):
            return mode
    return "unsupported"


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        return hidden[:, 0]
    m = mask[..., None].astype(np.float32)
    if mode == "max":
        return np.where(m > 0, hidden, -1e9).max(axis=1)
    return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's threads spin between runs by default, taking the cores a retriever
    # replica shares with the gateway, the router and the engines
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_int8(model_dir: Path, folder: Path, target: Path, meta: Path) -> None:
    """Export the model's transformer to ONNX and quantize its weights to int8."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".build-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, attn_implementation="eager"
        ).eval()  # the eager attention's graph is the one the optimizer fuses
        sample = tokenizer(["a sample", "another sample text"], padding=True, return_tensors="pt")
        names = [n for n in tokenizer.model_input_names if n in sample]

        class Hidden(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *args: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, args, strict=True))).last_hidden_state

        axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
        with torch.inference_mode():
            torch.onnx.export(
                Hidden(),
                tuple(sample[n] for n in names),
                str(tmp / "model.onnx"),
                input_names=names,
                output_names=["hidden"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        import onnx

        fused = _fuse(tmp / "model.onnx", tmp / "fused.onnx", model.config)
        graph = onnx.load(str(fused)).graph
        keep_fp32 = [
            n.name
            for n in graph.node
            if n.op_type == "MatMul" and "/output/dense" in n.name and "/attention/" not in n.name
        ]
        quantize_dynamic(
            str(fused),
            str(tmp / "model.int8.onnx"),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            nodes_to_exclude=keep_fp32,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        made = {
            "sha256": file_sha256(tmp / "model.int8.onnx"),
            "recipe": RECIPE,
            "fused": fused.name != "model.onnx",
            "fp32_nodes": keep_fp32,
        }
        (tmp / "model.int8.json").write_text(json.dumps(made))
        os.replace(tmp / "model.int8.onnx", target)
        os.replace(tmp / "model.int8.json", meta)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fuse(source: Path, target: Path, config: Any) -> Path:
    """The graph with ONNX Runtime's transformer fusions (attention, layer norms, GELU)
    where the model is BERT-shaped; the graph as exported where it is not."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads = getattr(config, "num_attention_heads", 0)
    hidden = getattr(config, "hidden_size", 0)
    if getattr(config, "model_type", "") not in _BERT_SHAPED or not heads or not hidden:
        return source
    try:
        model = optimize_model(
            str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
        )
        model.save_model_to_file(str(target))
    except Exception as exc:  # noqa: BLE001 - an unfusable graph still quantizes as exported
        logger.warning("graph fusion failed (%s); quantizing the graph as exported", exc)
        return source
    return target
