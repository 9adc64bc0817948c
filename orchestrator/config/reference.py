"""The configuration reference (``docs/configuration.md``), generated from the config
models' own fields: every key with its type, bounds, default and description, a section
per model, reached from the file's top level. ``mixserve config reference`` writes it; a
test fails when the file in the repository is not what the models give."""

from __future__ import annotations

import json
import re
import types
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from orchestrator.config.mixserve import MixserveConfig

TITLE = "# Configuration reference"
INTRO = (
    "Every key of a mixserve config file, generated from the config models' own field "
    "descriptions (`orchestrator/config/`) by `mixserve config reference --out "
    "docs/configuration.md`: do not edit it by hand (a test fails when it is stale). "
    "Every model refuses keys it does not list, with their YAML path. Paths relative to "
    "the config file resolve against its folder."
)


def models(root: type[BaseModel] = MixserveConfig) -> dict[type[BaseModel], list[str]]:
    """Each model reachable from ``root``, in the order first reached, with the YAML paths
    it is found at (``[]`` marks a list's items)."""
    found: dict[type[BaseModel], list[str]] = {root: ["(top level)"]}
    queue: list[tuple[type[BaseModel], str]] = [(root, "")]
    while queue:
        model, path = queue.pop(0)
        for name, field in model.model_fields.items():
            for inner, suffix in _nested(field.annotation):
                where = f"{path}{'.' if path else ''}{name}{suffix}"
                if inner in found:
                    if where not in found[inner]:
                        found[inner].append(where)
                    continue
                found[inner] = [where]
                queue.append((inner, where))
    return found


def _nested(tp: Any, suffix: str = "") -> list[tuple[type[BaseModel], str]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [(tp, suffix)]
    origin = get_origin(tp)
    if origin is list:
        return [m for arg in get_args(tp) for m in _nested(arg, suffix + "[]")]
    if origin is dict:
        return [m for arg in get_args(tp)[1:] for m in _nested(arg, suffix + ".*")]
    return [m for arg in get_args(tp) for m in _nested(arg, suffix)]


def type_name(tp: Any) -> str:
    """A field's type as a reader of the YAML sees it."""
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    if origin is Literal:
        return " | ".join(f"`{json.dumps(a)}`" for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {type_name(get_args(tp)[0])}"
    if origin is dict:
        key, value = get_args(tp)
        return f"map of {type_name(key)} to {type_name(value)}"
    if get_args(tp) and hasattr(tp, "__metadata__"):  # Annotated
        return type_name(get_args(tp)[0])
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def bounds(field: FieldInfo) -> str:
    """The field's constraints: ``>= 1``, ``<= 64``, a pattern (its own, or its type's:
    ``Name`` carries one in its ``Annotated``)."""
    out = []
    symbols = {Ge: (">=", "ge"), Gt: (">", "gt"), Le: ("<=", "le"), Lt: ("<", "lt")}
    for meta in [*field.metadata, *getattr(field.annotation, "__metadata__", ())]:
        for kind, (symbol, attr) in symbols.items():
            if isinstance(meta, kind):
                out.append(f"{symbol} {getattr(meta, attr)}")
        if isinstance(meta, MinLen):
            out.append(f"at least {meta.min_length} long")
        if isinstance(meta, MaxLen):
            out.append(f"at most {meta.max_length} long")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            out.append(f"matches `{pattern}`")
    return ", ".join(out)


def default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "its defaults"
    return f"`{json.dumps(value, default=str)}`"


def _prose(text: str) -> str:
    """One line, its angle brackets (engine-<name>) kept as text, not read as HTML."""
    return re.sub(r"<(?=[A-Za-z/])", r"\\<", " ".join(text.split()))


def _cell(text: str) -> str:
    return _prose(text).replace("|", "\\|")


def reference(root: type[BaseModel] = MixserveConfig) -> str:
    """The whole reference, as Markdown."""
    lines = [TITLE, "", INTRO, ""]
    for model, paths in models(root).items():
        lines += [f"## {model.__name__}", ""]
        doc = (model.__doc__ or "").strip()
        if doc and model.__doc__ != BaseModel.__doc__:
            lines += [_prose(doc), ""]
        lines += ["At: " + ", ".join(f"`{p}`" for p in paths), ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            kind = type_name(field.annotation)
            limits = bounds(field)
            if limits:
                kind += f" ({limits})"
            lines.append(
                f"| `{name}` | {_cell(kind)} | {_cell(default(field))} | "
                f"{_cell(field.description or '')} |"
            )
        lines.append("")
    return "\n".join(lines)
