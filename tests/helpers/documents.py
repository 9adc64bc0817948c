"""Test documents: a deterministic bag-of-words embedder (for tests about storage and
indexing, not embeddings) and a minimal text PDF written by hand."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


class HashingEmbedder:
    """Words hashed into 64 dimensions, unit length; records what it embedded."""

    package = "hashing-test"
    precision = "fp32"
    dim = 64
    parallel = 1

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def load(self) -> None:
        pass

    def identity(self) -> dict[str, Any]:
        return {"package": self.package, "version": "1", "dim": self.dim, "pooling": "sum",
                "normalize": True, "precision": "fp32", "max_tokens": 0}  # fmt: skip

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.embedded += texts
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def write_pdf(path: Path, pages: list[str]) -> None:
    """A PDF whose pages show ``pages`` in Helvetica (one line each)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        page_no = len(objects) + 1
        kids.append(f"{page_no} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_no + 1} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
            ">> >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
