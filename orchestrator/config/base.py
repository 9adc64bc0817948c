"""Pieces every config model shares: names, strict models (unknown keys refused), where a
model comes from, resources, prices, and the bounds of a deployment the gateway calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"


Name = Annotated[str, Field(pattern=NAME_PATTERN)]


EngineValue = str | int | float | bool | None


# one level of nesting, for vLLM's config groups (structured_outputs_config: {...})
EngineArg = EngineValue | dict[str, EngineValue]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    """Where a model's weights come from: a model package (prepared locally) or a path."""

    package: str | None = Field(
        None, description="Package on the index shipping the model (e.g. a GGUF package)."
    )
    path: str | None = Field(
        None, description="Local model directory, or a model id the engine can resolve."
    )
    revision: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="Revision (commit, tag or branch) of a model named by id, pinned so every "
        "replica loads the same weights; part of the specialist's version. A packaged "
        "model's revision is its package's version.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        if (self.package is None) == (self.path is None):
            raise ValueError("give exactly one of 'package' or 'path'")
        if self.revision is not None and self.package is not None:
            raise ValueError("revision: a packaged model's revision is its package version")
        return self

    def location(self, cache_dir: Path) -> str:
        """The directory (or model id) an engine loads for this source."""
        from weights import model_location

        return model_location(self.package, self.path, cache_dir)

    def label(self) -> str:
        """``package:NAME`` or ``path:DIR``, as router artifacts record their backbone."""
        return f"package:{self.package}" if self.package else f"path:{self.path}"


class Resources(_Strict):
    num_cpus: float = Field(1.0, ge=0, description="Ray logical CPUs per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (0 on CPU nodes).")
    memory_gb: float | None = Field(
        None, gt=0, description="Memory Ray reserves per replica (scheduling hint), in GiB."
    )
    custom: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per replica, to place it on nodes that have them "
        "(e.g. {'accelerator_type:A100': 0.001}, or a resource your node types declare).",
    )

    def ray_options(self) -> dict[str, Any]:
        """These resources as Ray actor options (``num_cpus``, ``num_gpus``, ``memory``,
        ``resources``)."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_gb is not None:
            options["memory"] = int(self.memory_gb * 1024**3)
        if self.custom:
            options["resources"] = dict(self.custom)
        return options

    @field_validator("custom")
    @classmethod
    def _custom_resources(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = {"CPU", "GPU", "memory", "object_store_memory"} & set(value)
        if builtin:
            raise ValueError(f"{', '.join(sorted(builtin))}: use num_cpus, num_gpus or memory_gb")
        bad = sorted(name for name, amount in value.items() if not amount > 0)
        if bad:
            raise ValueError(f"custom resource amounts must be above 0: {', '.join(bad)}")
        return value


class Price(_Strict):
    usd_per_mtok_in: float = Field(
        0.0, ge=0, le=10_000, description="USD per million input tokens."
    )
    usd_per_mtok_out: float = Field(
        0.0, ge=0, le=10_000, description="USD per million output tokens."
    )
    usd_per_replica_hour: float = Field(
        0.0,
        ge=0,
        le=100_000,
        description="USD per replica-hour (GPU type x count), charged by busy-time share.",
    )


class _CallBounds(_Strict):
    """Bounds of a deployment the gateway calls on the way to an answer (router, retriever):
    past them, or its timeout, the request goes on degraded instead of failing (router:
    to its `fallback`; retrieval: without passages), marked so in its routing."""

    max_ongoing_requests: int = Field(64, ge=1, description="Calls one replica runs at once.")
    max_queued_requests: int = Field(
        256, ge=1, description="Calls waiting for a replica before it refuses more."
    )
    timeout_s: float = Field(
        5.0, gt=0, le=600, description="Longest the gateway waits for one call."
    )
