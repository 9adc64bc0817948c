"""A config from YAML: each problem reported with its YAML path, the ``engines:`` section
taken apart, and paths resolved against the file's folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.config.engines import SHARED_SETTINGS, EngineConfig
from orchestrator.config.mixserve import MixserveConfig


class ConfigError(ValueError):
    """A config file that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def _messages(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[str]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(p for p in err["loc"] if p not in ("function-after",))
        msg = err["msg"].removeprefix("Value error, ")
        # a cross-check names its own YAML path when it has one
        if not loc and re.match(r"[a-z_]+(\[\d+\])?[.:\[]", msg):
            errors.append(msg)
        else:
            errors.append(f"{_yaml_path(loc)}: {msg}")
    return errors


def _on_engines(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with each specialist that names an entry of `engines:` given that engine's
    settings; the problems found on the way (an engine setting on such a specialist, an
    engine that does not exist, the gone `engine_group`)."""
    engines, specialists = data.get("engines") or [], data.get("specialists")
    if not isinstance(engines, list) or not isinstance(specialists, list):
        return data, []  # the models report the wrong type
    errors: list[str] = []
    raw: dict[str, tuple[int, dict[str, Any] | None]] = {}
    for j, entry in enumerate(engines):
        if not isinstance(entry, dict):
            continue
        try:
            EngineConfig.model_validate(entry)
        except ValidationError as exc:
            errors += _messages(exc, ("engines", j))
            if isinstance(entry.get("name"), str):
                raw.setdefault(entry["name"], (j, None))  # broken: reported above
            continue
        raw.setdefault(entry["name"], (j, entry))
    out: list[Any] = []
    for i, spec in enumerate(specialists):
        if isinstance(spec, dict) and "engine_group" in spec:
            errors.append(
                f"specialists[{i}].engine_group: gone; list the shared engine under "
                "`engines:` and name it on each specialist with `engine: <name>`"
            )
            continue
        name = spec.get("engine") if isinstance(spec, dict) else None
        if not isinstance(name, str):
            out.append(spec)  # an engine of its own (or a wrong type, the model's to report)
            continue
        if name not in raw:
            known = ", ".join(raw) or "none"
            hint = (
                " (the implementation is set with `backend:`)" if name in ("vllm", "fake") else ""
            )
            errors.append(f"specialists[{i}].engine: no engine {name!r} in engines ({known}){hint}")
            continue
        j, entry = raw[name]
        if entry is None:
            continue
        where = f"engines[{j}] ({name})"
        merged = {k: v for k, v in entry.items() if k != "name"}
        for key, value in spec.items():
            if key in SHARED_SETTINGS:
                errors.append(
                    f"specialists[{i}].{key}: set on {where}, the engine it runs on, not here"
                )
            elif key == "price" and isinstance(value, dict):
                if "usd_per_replica_hour" in value:
                    errors.append(
                        f"specialists[{i}].price.usd_per_replica_hour: set on {where}, the "
                        "engine it runs on, not here"
                    )
                merged["price"] = {**(merged.get("price") or {}), **value}
            else:
                merged[key] = value
        out.append(merged)
    return {**data, "specialists": out}, errors


def parse_config(
    data: object, source: str = "<config>", base_dir: Path | None = None
) -> MixserveConfig:
    """Validate already-parsed YAML; raise ``ConfigError`` listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    if base_dir is not None and "base_dir" not in data:
        data = {**data, "base_dir": str(base_dir)}
    data, errors = _on_engines(data)
    if errors:
        raise ConfigError(source, errors)
    try:
        return MixserveConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _messages(exc)) from None


def load_config(path: str | Path) -> MixserveConfig:
    """Load and validate a YAML config file; relative paths resolve against its folder."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(file), [f"{where}invalid YAML: {problem}"]) from None
    return parse_config(data, str(file), base_dir=file.resolve().parent)
