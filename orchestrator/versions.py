"""Versions of what each specialist serves: its model (with its revision, or its
package's version) and the engine settings that change its answers or its engine,
hashed. ``mixserve deploy`` tells from them which specialists a new config changes,
``mixserve status`` shows them per replica, ``mixserve rollback`` returns to them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from orchestrator.config import MixserveConfig, SpecialistConfig

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
    "solver",
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


def specialist_version(spec: SpecialistConfig, template: str | None = None) -> str:
    """12 hex digits of the SHA-256 of ``versioned(spec)`` and the text of its chat
    template (``template``: a file edited under the same name is a new version)."""
    data = {**versioned(spec), "chat_template_text": template}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def specialist_versions(
    specs: list[SpecialistConfig], templates: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each specialist's version; ``templates``: chat template texts by specialist."""
    texts = templates or {}
    return {s.name: specialist_version(s, texts.get(s.name)) for s in specs}


def config_versions(config: MixserveConfig) -> dict[str, str]:
    """Every specialist's version, its chat template read from where the config names."""
    return {s.name: specialist_version(s, config.chat_template(s)) for s in config.specialists}
