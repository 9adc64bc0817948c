"""The config profiles shipped with mixserve (package data, so an installed wheel has
them): ``cpu``, the embedded default (three specialists on Gemma 3 270M, its user guide
in ``corpus/`` as the retrieval collection), and ``gpu`` (real distinct models).

``--config`` takes a file, or one of these names.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
DEFAULT = "cpu"


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def config_file(value: str | Path) -> Path:
    """``value`` itself when it names a file; else the shipped profile of that name; a
    value that is neither is returned as given (loading it reports it missing)."""
    path = Path(value)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    shipped = FOLDER / f"{value}.yaml"
    return shipped if shipped.is_file() else path
