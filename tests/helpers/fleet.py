"""The integration tier's service: the shipped CPU profile with fake specialist engines
(the router LLM and the retriever stay real), a real Redis, a real local Ray (the
session's one, ``tests/helpers/shared_ray.py``), started through the same ``ServiceRun``
that ``mixserve up`` uses."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator import profiles
from orchestrator.billing import KeyStore, LedgerReader
from orchestrator.config import AuthConfig, MixserveConfig, Price, load_config, with_specialists
from orchestrator.redis_clients import sync_client
from orchestrator.runtime import ServiceRun, free_port
from orchestrator.settings import get_settings
from router_model import read_score_tables
from tests.helpers.cli import require_prepared_models
from tests.helpers.otlp_receiver import http_receiver
from tests.helpers.shared_ray import SharedRay

TOKEN_DELAY_S = 0.02
REQUEST_TIMEOUT_S = 6.0  # the fake needs 0.02 s a token: 1000 tokens overrun it


PRICES = {"general": 0.2, "code": 10.0, "math": 0.2}  # code is the expensive specialist
# math and general, which share one engine, are also charged $0.01 per second of its
# replica's busy time
ENGINE_USD_PER_HOUR = 36.0
ROUTER_USD_PER_HOUR = 360.0
RETRIEVAL_USD_PER_HOUR = 36.0


def train_example_artifact(cfg: MixserveConfig, out_dir: Path) -> Path:
    """A learned (kNN) router trained on a score table made from the config's examples:
    model ``m-<name>`` scores 1 on its own specialist's examples and 0.1 elsewhere."""
    from router_model.artifact import RouterArtifact, save_artifact
    from router_model.backbone import HiddenStateEmbedder
    from router_model.train import train_head

    models = [f"m-{s.name}" for s in cfg.specialists]
    table = out_dir / "examples.jsonl"
    rows = [
        {"query": q, "scores": {m: 1.0 if m == f"m-{s.name}" else 0.1 for m in models}}
        for s in cfg.specialists
        for q in s.examples
    ]
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tables = read_score_tables([table])
    r = cfg.router
    embedder = HiddenStateEmbedder(
        r.model.location(get_settings().cache_dir), r.layer, r.max_query_tokens, dtype=r.dtype
    )
    embedder.load()
    x = embedder.embed(tables[0].queries)
    head, meta = train_head("knn", {"k": 3, "prior_weight": 0}, tables, x, folds=0)
    prices = {f"m-{n}": {"usd_per_mtok_in": p, "usd_per_mtok_out": p} for n, p in PRICES.items()}
    artifact = RouterArtifact(
        "knn", head, embedder.spec, "package:x", tables[0].models, prices, meta
    )
    return save_artifact(artifact, out_dir / "router")


def fake_config(artifact: Path | None = None) -> MixserveConfig:
    """The shipped CPU config with every specialist on the fake engine (router and
    retriever stay real); with ``artifact``, the router uses that learned head."""
    cfg = load_config(profiles.FOLDER / "cpu.yaml")
    specialists = [
        s.model_copy(
            update={
                "backend": "fake",
                "engine_kwargs": {"token_delay_s": TOKEN_DELAY_S},
                "engine_env": {},
                # code has an engine of its own that saturates quickly (2 running, 2
                # waiting): spill-over tests fill it; general and math share theirs
                **(
                    {"max_ongoing_requests": 2, "max_queued_requests": 2, "engine": None}
                    if s.name == "code"
                    else {}
                ),
                "price": Price(
                    usd_per_mtok_in=PRICES[s.name],
                    usd_per_mtok_out=PRICES[s.name],
                    usd_per_replica_hour=0.0 if s.name == "code" else ENGINE_USD_PER_HOUR,
                ),
            }
        )
        for s in cfg.specialists
    ]
    gateway = cfg.gateway.model_copy(update={"request_timeout_s": REQUEST_TIMEOUT_S})
    router = cfg.router.model_copy(update={"usd_per_replica_hour": ROUTER_USD_PER_HOUR})
    retrieval = cfg.retrieval.model_copy(update={"usd_per_replica_hour": RETRIEVAL_USD_PER_HOUR})
    if artifact is not None:
        # the learned head decides every query: the profile's early exit stands in for its
        # few-shot head (it scores task membership, not a model's quality), so it goes too
        router = router.model_copy(
            update={
                "artifact": str(artifact),
                "models": {s.name: f"m-{s.name}" for s in cfg.specialists},
                "early_exit": None,
            }
        )
    fake = cfg.model_copy(
        update={
            "gateway": gateway,
            "router": router,
            "retrieval": retrieval,
            "auth": AuthConfig(enabled=True),
        }
    )
    return with_specialists(fake, specialists)  # the cross-checks hold too


_ARTIFACTS: dict[str, Path] = {}  # what an example artifact depends on -> where it is


def example_artifact(cfg: MixserveConfig, out_dir: Path) -> Path:
    """``train_example_artifact``, trained once per test session for what it depends on
    (the specialists' examples, the router model, its layer, length and dtype, the
    prices): the services of a session share it instead of training it again (7 s each,
    measured here). A cached one that is gone from disk is trained again."""
    r = cfg.router
    what = [
        [[s.name, list(s.examples)] for s in cfg.specialists],
        str(r.model.location(get_settings().cache_dir)),
        [r.layer, r.max_query_tokens, r.dtype],
        PRICES,
    ]
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
    found = _ARTIFACTS.get(key)
    if found is None or not found.exists():
        found = _ARTIFACTS[key] = train_example_artifact(cfg, out_dir)
    return found


def key_store(service: ServiceRun) -> KeyStore:
    return KeyStore(sync_client(service.redis_url))


def ledger(service: ServiceRun) -> LedgerReader:
    """The service's ledger, read as ``mixserve costs`` reads it."""
    return LedgerReader(sync_client(service.redis_url))


def gateway_changed(**update: Any) -> Callable[[MixserveConfig], MixserveConfig]:
    """An ``adjust`` for ``fake_fleet``: the config with these gateway settings."""

    def adjust(config: MixserveConfig) -> MixserveConfig:
        return config.model_copy(update={"gateway": config.gateway.model_copy(update=update)})

    return adjust


def spill_changed(**update: Any) -> Callable[[MixserveConfig], MixserveConfig]:
    """An ``adjust`` for ``fake_fleet``: the config with these ``policy.spill`` settings."""

    def adjust(config: MixserveConfig) -> MixserveConfig:
        spill = config.policy.spill.model_copy(update=update)
        policy = config.policy.model_copy(update={"spill": spill})
        return config.model_copy(update={"policy": policy})

    return adjust


def both(
    *adjusts: Callable[[MixserveConfig], MixserveConfig],
) -> Callable[[MixserveConfig], MixserveConfig]:
    """Several ``adjust``s, applied in order."""

    def adjust(config: MixserveConfig) -> MixserveConfig:
        for change in adjusts:
            config = change(config)
        return config

    return adjust


def specialist_changed(name: str, **update: Any) -> Callable[[MixserveConfig], MixserveConfig]:
    """An ``adjust`` for ``fake_fleet``: specialist ``name`` with these settings, the
    config validated again (its cross-checks hold for the change too)."""

    def adjust(config: MixserveConfig) -> MixserveConfig:
        specialists = [
            s.model_copy(update=update) if s.name == name else s for s in config.specialists
        ]
        return with_specialists(config, specialists)

    return adjust


@contextmanager
def fake_fleet(
    state_dir: Path,
    router_dir: Path,
    adjust: Callable[[MixserveConfig], MixserveConfig] | None = None,
    *,
    ray: SharedRay,
) -> Iterator[Any]:
    """A running service of the fake fleet (learned router, API keys on, spans also sent
    to an OTLP receiver) on the session's Ray, with ``api_key`` (tenant-a's), ``otlp``
    (received spans) and ``sigterm_after_start`` (the SIGTERM handler found after Ray
    started) set on it; Serve, its Redis and its receiver stopped on exit."""
    require_prepared_models()
    with http_receiver() as (endpoint, received):  # every process exports its spans here too
        settings = dataclasses.replace(
            get_settings(),
            redis_url=None,
            ray_address=None,
            state_dir=state_dir,
            otlp_endpoint=endpoint,
            otlp_protocol="http/protobuf",
        )
        artifact = example_artifact(load_config(profiles.FOLDER / "cpu.yaml"), router_dir)
        config = fake_config(artifact)
        config = adjust(config) if adjust else config
        ray.acquire(config.gateway.max_header_bytes)
        run = ServiceRun(
            config,
            settings,
            port=free_port(),
            state_file=settings.state_file,
        )
        ray.deploying(run.run_id)
        try:
            run.start(ready_timeout_s=300)
            run.sigterm_after_start = ray.sigterm_after_start  # type: ignore[attr-defined]
            run.api_key, _ = key_store(run).create("tenant-a")  # type: ignore[attr-defined]
            run.otlp = received  # type: ignore[attr-defined]
            yield run
        finally:
            run.stop()
            ray.stopped(run.run_id)
