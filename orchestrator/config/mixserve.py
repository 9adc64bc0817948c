"""A whole mixserve config: every component's model, and the checks across them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from orchestrator.config.base import _Strict
from orchestrator.config.engines import (
    SHARED_SETTINGS,
    EngineConfig,
    EngineSettings,
    SpecialistConfig,
)
from orchestrator.config.policy import PolicyConfig
from orchestrator.config.retrieval import RetrievalConfig
from orchestrator.config.router import RouterConfig
from orchestrator.config.service import (
    AuthConfig,
    CacheConfig,
    GatewayConfig,
    LedgerConfig,
    TracingConfig,
)


class MixserveConfig(_Strict):
    name: str = Field("mixserve", description="Serve application name.")
    engines: list[EngineConfig] = Field(
        default_factory=list,
        description="Engines the specialists share: each one deployment (engine-<name>) "
        "serving every specialist that names it.",
    )
    specialists: list[SpecialistConfig] = Field(min_length=1, description="The fleet.")
    router: RouterConfig = Field(description="Model-level routing.")
    policy: PolicyConfig = Field(
        default_factory=PolicyConfig, description="How many specialists answer, and how."
    )
    retrieval: RetrievalConfig = Field(
        default_factory=RetrievalConfig, description="Retrieval grounding."
    )
    gateway: GatewayConfig = Field(default_factory=GatewayConfig, description="HTTP ingress.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="Response cache.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="API keys.")
    ledger: LedgerConfig = Field(default_factory=LedgerConfig, description="Cost ledger.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="Request tracing.")
    base_dir: str = Field(".", description="Directory relative paths are resolved against.")

    @model_validator(mode="after")
    def _cross_checks(self) -> MixserveConfig:
        names = [s.name for s in self.specialists]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate specialist names: {', '.join(dupes)}")
        if "auto" in names:
            raise ValueError("'auto' is reserved and cannot name a specialist")
        unknown = sorted(set(self.router.models) - set(names))
        if unknown:
            raise ValueError(f"router.models names unknown specialists: {', '.join(unknown)}")
        if self.router.artifact is not None:
            missing = [n for n in names if n not in self.router.models]
            if missing:
                raise ValueError(
                    f"router.artifact is set: router.models must map {', '.join(missing)}"
                )
        if self.router.fallback is not None and self.router.fallback not in names:
            raise ValueError(f"router.fallback {self.router.fallback!r} is not a specialist")
        self._check_policy(names)
        self._check_engines()
        self._check_adapters()
        self._check_templates()
        self._check_early_exit()
        if self.auth.enabled and not self.ledger.enabled:
            raise ValueError("auth.enabled needs ledger.enabled: key budgets are kept there")
        if self.gateway.default_max_tokens > self.gateway.max_tokens_limit:
            raise ValueError("gateway.default_max_tokens exceeds gateway.max_tokens_limit")
        cols = [c.name for c in self.retrieval.collections]
        if len(cols) != len(set(cols)):
            raise ValueError("duplicate retrieval collection names")
        for s in self.specialists:
            unknown = [c for c in s.retrieval.collections or [] if c not in cols]
            if unknown:
                raise ValueError(
                    f"specialist {s.name!r}: retrieval.collections names {unknown[0]!r}, "
                    f"not one of retrieval.collections ({', '.join(cols) or 'none'})"
                )
        return self

    def _check_policy(self, names: list[str]) -> None:
        from orchestrator.policies import policy_names

        policy = self.policy
        if policy.default not in policy_names():
            known = ", ".join(policy_names())
            raise ValueError(f"policy.default {policy.default!r} is not one of: {known}")
        synthesizer = policy.ensemble.synthesizer
        if synthesizer is not None and synthesizer not in names:
            raise ValueError(f"policy.ensemble.synthesizer {synthesizer!r} is not a specialist")
        if policy.default == "ensemble" and policy.ensemble.top_k + 1 > policy.max_calls:
            raise ValueError(
                f"policy.ensemble.top_k ({policy.ensemble.top_k}) plus the synthesizer call "
                f"exceeds policy.max_calls ({policy.max_calls})"
            )

    def _check_engines(self) -> None:
        names = [e.name for e in self.engines]
        for j, name in enumerate(names):
            if names.index(name) != j:
                raise ValueError(
                    f"engines[{j}].name: {name!r} names engines[{names.index(name)}] too"
                )
        used = {s.engine for s in self.specialists}
        for j, engine in enumerate(self.engines):
            if engine.name not in used:
                raise ValueError(f"engines[{j}] ({engine.name}): no specialist runs on it")
        for i, spec in enumerate(self.specialists):
            if spec.engine is None:
                continue
            if spec.engine not in names:
                known = ", ".join(names) or "none"
                raise ValueError(f"specialists[{i}].engine: no engine {spec.engine!r} ({known})")
            j = names.index(spec.engine)
            engine = self.engines[j]
            shared = [f for f in SHARED_SETTINGS if getattr(spec, f) != getattr(engine, f)]
            if spec.price.usd_per_replica_hour != engine.price.usd_per_replica_hour:
                shared.append("price.usd_per_replica_hour")
            if shared:
                raise ValueError(
                    f"specialists[{i}].{shared[0]}: differs from engines[{j}] "
                    f"({engine.name}), the engine it runs on"
                )

    def _check_templates(self) -> None:
        from specialists.templates import SHIPPED

        for i, spec in enumerate(self.specialists):
            name = spec.chat_template
            if name is None or name in SHIPPED:
                continue
            path = self.resolve(str(Path(name).expanduser()))
            if not path.is_file():
                raise ValueError(
                    f"specialists[{i}].chat_template: no file {path}, and no shipped "
                    f"template of that name ({', '.join(SHIPPED)})"
                )

    def _check_adapters(self) -> None:
        for i, spec in enumerate(self.specialists):
            lora = spec.lora
            if lora is None:
                continue
            where = f"specialists[{i}].lora"
            local = self.resolve(str(Path(lora).expanduser()))
            if local.exists():
                if not (local / "adapter_config.json").is_file():
                    raise ValueError(f"{where}: {local} holds no adapter_config.json")
            elif lora.startswith((".", "/", "~")) or lora.count("/") != 1:
                raise ValueError(f"{where}: no LoRA adapter at {local}")

    def _check_early_exit(self) -> None:
        probe = self.router.early_exit
        if probe is not None and not (self.resolve(probe.artifact) / "router.json").is_file():
            where = "router.early_exit.artifact"
            raise ValueError(f"{where}: no router artifact at {self.resolve(probe.artifact)}")
        depth = self.artifact_layer()
        if depth is None:
            return
        r = self.router
        if "layer" in r.model_fields_set and r.layer != depth:
            raise ValueError(
                f"router.layer is {r.layer}, but router.artifact was trained at layer {depth}, "
                "the depth the router runs with it: leave router.layer out, or retrain there"
            )
        if probe is not None and probe.layer >= depth:
            raise ValueError(
                f"router.early_exit.layer ({probe.layer}) must be below the layer "
                f"router.artifact was trained at ({depth}): the artifact decides there already"
            )

    def artifact_layer(self) -> int | None:
        """The layer ``router.artifact`` was trained at (the router runs its LLM that deep
        with it), from its ``router.json``; None without an artifact."""
        if self.router.artifact is None:
            return None
        meta = self.resolve(self.router.artifact) / "router.json"
        try:
            layer = json.loads(meta.read_text())["backbone"]["layer"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(
                f"router.artifact: no readable router artifact at {meta.parent}"
            ) from None
        if not isinstance(layer, int) or layer < 1:
            raise ValueError(f"router.artifact: {meta} names no layer")
        return layer

    def chat_template(self, spec: SpecialistConfig) -> str | None:
        """The text of ``spec``'s chat template: a shipped one by name, else the file
        (relative to the config); None for the model's own."""
        from specialists.templates import SHIPPED, shipped_template

        name = spec.chat_template
        if name is None:
            return None
        if name in SHIPPED:
            return shipped_template(name)
        return self.resolve(str(Path(name).expanduser())).read_text(encoding="utf-8")

    def adapter(self, spec: SpecialistConfig) -> str | None:
        """Where ``spec``'s LoRA adapter loads from: its local directory, or its id."""
        if spec.lora is None:
            return None
        local = self.resolve(str(Path(spec.lora).expanduser()))
        return str(local) if local.exists() else spec.lora

    def engine_deployments(self) -> dict[str, list[SpecialistConfig]]:
        """Deployment name -> the specialists it serves (an engine's, or one's own)."""
        groups: dict[str, list[SpecialistConfig]] = {}
        for spec in self.specialists:
            groups.setdefault(spec.deployment, []).append(spec)
        return groups

    def written(self) -> dict[str, Any]:
        """The config as a YAML file holds it (``parse_config`` reads it back as it is): a
        specialist on an entry of `engines:` without that engine's settings."""
        data = self.model_dump(mode="json")
        for spec in data["specialists"]:
            if spec["engine"] is not None:
                for key in SHARED_SETTINGS:
                    del spec[key]
                del spec["price"]["usd_per_replica_hour"]
        return data

    def specialist(self, name: str) -> SpecialistConfig:
        for spec in self.specialists:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    def data_dir(self, override: Path | None, cache_dir: Path) -> Path:
        """Where collections live: ``override`` (MIXSERVE_DATA_DIR), else the config's
        ``retrieval.data_dir``, else ``<cache_dir>/data``."""
        if override is not None:
            return override
        if self.retrieval.data_dir:
            return self.resolve(self.retrieval.data_dir)
        return cache_dir / "data"


def with_specialists(config: MixserveConfig, specialists: list[SpecialistConfig]) -> MixserveConfig:
    """``config`` with ``specialists`` (settings changed in code): its `engines:` entries
    taken anew from the specialists naming them (the first one's settings), validated."""
    engines: dict[str, dict[str, Any]] = {}
    for spec in specialists:
        if spec.engine is not None and spec.engine not in engines:
            settings = spec.model_dump(include=set(EngineSettings.model_fields))
            engines[spec.engine] = {"name": spec.engine, **settings}
    data = config.model_dump()
    data.update(specialists=[s.model_dump() for s in specialists], engines=list(engines.values()))
    return MixserveConfig.model_validate(data)
