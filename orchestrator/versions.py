"""Versions of what each specialist serves: its model (with its revision, or its
package's version) and the engine settings that change its answers or its engine,
hashed. ``mixserve deploy`` tells from them which specialists a new config changes,
``mixserve status`` shows them per replica, ``mixserve rollback`` returns to them."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any

from orchestrator.config import SpecialistConfig

# what a specialist's answers and engine depend on (replica counts and queue bounds do not)
VERSIONED_FIELDS = (
    "model",
    "backend",
    "max_model_len",
    "engine_kwargs",
    "engine_env",
    "chat_template",
    "stop",
    "tool_parser",
    "tool_strict_level",
    "system_prompt",
    "lora",
)


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not-installed"


def versioned(spec: SpecialistConfig) -> dict[str, Any]:
    """The specialist's versioned settings, with its model's revision made explicit."""
    data = spec.model_dump(mode="json", include=set(VERSIONED_FIELDS))
    model = spec.model
    data["model"]["revision"] = (
        package_version(model.package) if model.package is not None else model.revision
    )
    return data


def specialist_version(spec: SpecialistConfig) -> str:
    """12 hex digits of the SHA-256 of ``versioned(spec)``."""
    text = json.dumps(versioned(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def specialist_versions(specs: list[SpecialistConfig]) -> dict[str, str]:
    return {s.name: specialist_version(s) for s in specs}
