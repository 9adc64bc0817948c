"""Chat templates shipped with mixserve, for models whose own template does not fit (a
base model has none): ``gemma_base`` lays a conversation out as Question/Answer turns."""

from __future__ import annotations

from importlib import resources

SHIPPED = ("gemma_base",)


def shipped_template(name: str) -> str:
    """The text of the shipped template ``name`` (one of ``SHIPPED``)."""
    if name not in SHIPPED:
        raise KeyError(f"no shipped chat template {name!r}; shipped: {', '.join(SHIPPED)}")
    return resources.files(__package__).joinpath(f"{name}.jinja").read_text(encoding="utf-8")
