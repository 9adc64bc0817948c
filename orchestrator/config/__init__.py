"""Configuration models: one pydantic model per component, loaded from YAML, one file per
concern (as vLLM's ``config/``): ``base`` (names, strict models, model sources,
resources, prices, call bounds), ``engines`` (engines, specialists, replica routing,
autoscaling), ``router``, ``policy``, ``retrieval``, ``service`` (gateway, keys, ledger,
cache, traces), ``mixserve`` (the whole config and the checks across components) and
``loading`` (YAML in, problems out with their YAML paths).

Every model forbids unknown keys so that a typo in a config file is an error with its
YAML path, not a silently ignored setting. Import the names from here.
"""

from __future__ import annotations

from orchestrator.config.base import (
    NAME_PATTERN,
    EngineArg,
    EngineValue,
    ModelSource,
    Name,
    Price,
    Resources,
)
from orchestrator.config.engines import (
    OWN_SETTINGS,
    REPLICA_ROUTERS,
    SHARED_SETTINGS,
    Autoscaling,
    EngineConfig,
    EngineSettings,
    ReplicaRouting,
    SpecialistConfig,
    SpecialistRetrieval,
)
from orchestrator.config.loading import ConfigError, load_config, parse_config
from orchestrator.config.mixserve import MixserveConfig, with_specialists
from orchestrator.config.policy import (
    CascadeConfig,
    EnsembleConfig,
    PolicyConfig,
    RetryConfig,
    SpillConfig,
)
from orchestrator.config.retrieval import CollectionConfig, EmbeddingConfig, RetrievalConfig
from orchestrator.config.router import EarlyExitConfig, RouterConfig
from orchestrator.config.service import (
    AuthConfig,
    CacheConfig,
    GatewayConfig,
    LedgerConfig,
    TracingConfig,
)

__all__ = [
    "NAME_PATTERN",
    "OWN_SETTINGS",
    "REPLICA_ROUTERS",
    "SHARED_SETTINGS",
    "AuthConfig",
    "Autoscaling",
    "CacheConfig",
    "CascadeConfig",
    "CollectionConfig",
    "ConfigError",
    "EarlyExitConfig",
    "EmbeddingConfig",
    "EngineArg",
    "EngineConfig",
    "EngineSettings",
    "EngineValue",
    "EnsembleConfig",
    "GatewayConfig",
    "LedgerConfig",
    "MixserveConfig",
    "ModelSource",
    "Name",
    "PolicyConfig",
    "Price",
    "ReplicaRouting",
    "Resources",
    "RetrievalConfig",
    "RetryConfig",
    "RouterConfig",
    "SpecialistConfig",
    "SpecialistRetrieval",
    "SpillConfig",
    "TracingConfig",
    "load_config",
    "parse_config",
    "with_specialists",
]
