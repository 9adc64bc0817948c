"""Router artifacts: a trained head plus everything needed to use it safely.

A directory holding ``router.json`` (format, backbone spec, head name and parameters, the
models it scores, their prices, training metadata, and the sha256 of every other file)
and ``head.npz`` (the head's arrays). It is written to a temporary sibling and renamed
into place, so a failed or interrupted write never leaves a partial artifact; loading
re-hashes every file and refuses an artifact made for another backbone.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from router_model.backbone import BackboneSpec
from router_model.heads import LearnedHead, RoutingHead, head_class

FORMAT = "mixserve-router/1"
META = "router.json"
HEAD = "head.npz"


class ArtifactError(ValueError):
    """A router artifact that is missing, corrupt or made for another backbone."""


@dataclass
class RouterArtifact:
    head_name: str
    head: RoutingHead
    backbone: BackboneSpec
    backbone_model: str
    models: list[str]
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def price_pairs(self) -> list[tuple[float, float]]:
        """(USD per million input tokens, per million output tokens) of each model, in
        ``models`` order (0 for a model the price table lacks)."""
        return [
            (
                self.prices.get(m, {}).get("usd_per_mtok_in", 0.0),
                self.prices.get(m, {}).get("usd_per_mtok_out", 0.0),
            )
            for m in self.models
        ]

    def check_backbone(self, spec: BackboneSpec) -> None:
        """The router must run the weights, layer and truncation the head was trained on;
        its precision may differ (``dtype: auto`` picks the CPU's): a head trained in
        float32 decides as it did on bfloat16 states (README: Router, precision)."""
        if replace(spec, dtype=self.backbone.dtype) != self.backbone:
            raise ArtifactError(
                f"router artifact was trained for {self.backbone_model} "
                f"({self.backbone.describe()}) but the router runs {spec.describe()}; "
                "retrain it, or set router.model, layer, max_query_tokens and dtype to match"
            )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_artifact(artifact: RouterArtifact, out_dir: str | Path) -> Path:
    """Write atomically: a temp directory beside ``out_dir``, then rename over it."""
    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **artifact.head.state())  # type: ignore[arg-type]
    head_bytes = buffer.getvalue()
    meta = {
        "format": FORMAT,
        "backbone": {"model": artifact.backbone_model, **asdict(artifact.backbone)},
        "head": {"name": artifact.head_name, "params": artifact.head.params},
        "models": artifact.models,
        "prices": artifact.prices,
        "training": artifact.training,
        "files": {HEAD: _sha256(head_bytes)},
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (tmp / HEAD).write_bytes(head_bytes)
        (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
        for path in (tmp / HEAD, tmp / META):
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_artifact(path: str | Path) -> RouterArtifact:
    folder = Path(path)
    if not (folder / META).is_file():
        raise ArtifactError(f"{folder}: not a router artifact (no {META})")
    try:
        meta = json.loads((folder / META).read_text())
        if meta.get("format") != FORMAT:
            raise ArtifactError(f"{folder}: unsupported artifact format {meta.get('format')!r}")
        for name, digest in meta["files"].items():
            file = folder / name
            if not file.is_file() or _sha256(file.read_bytes()) != digest:
                raise ArtifactError(f"{folder}: {name} is missing or corrupt (checksum mismatch)")
        with np.load(folder / HEAD, allow_pickle=False) as arrays:
            state = {k: arrays[k] for k in arrays.files}
        backbone = dict(meta["backbone"])
        model = str(backbone.pop("model"))
        spec = BackboneSpec(**backbone)
        cls = head_class(meta["head"]["name"])
        if not issubclass(cls, LearnedHead):
            raise ArtifactError(f"{folder}: head {meta['head']['name']!r} is not a learned head")
        head = cls.from_state(meta["head"]["params"], state)
        models = [str(m) for m in meta["models"]]
    except ArtifactError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ArtifactError(f"{folder}: corrupt router artifact ({exc})") from None
    return RouterArtifact(
        meta["head"]["name"], head, spec, model, models, meta.get("prices", {}), meta["training"]
    )
