"""``mixserve router``: train a router from score tables, evaluate it, calibrate λ.

Thin: the work is ``router_model``'s (training, evaluation, reports). Progress goes to
stderr; ``eval --json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from orchestrator.cli.common import (
    DEFAULT_CONFIG,
    ConfigOpt,
    err,
    fail,
    load_checked,
    out,
    prepare_models,
    progress,
)
from orchestrator.cli.router_cv import CvOpt, cv_modes, print_cv, refit_cv
from orchestrator.config import ModelSource, RouterConfig
from orchestrator.settings import get_settings

router_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and calibrate the router.")
ScoresOpt = Annotated[
    list[Path],
    typer.Option(
        "--scores", help="Score tables (JSONL): several after one --scores, or it repeated."
    ),
]
RouterOpt = Annotated[Path, typer.Option("--router", help="Router artifact directory.")]
# the tokens a query is assumed to cost, as the router config assumes by default
NOMINAL_IN = RouterConfig.model_fields["expected_input_tokens"].default
NOMINAL_OUT = RouterConfig.model_fields["expected_output_tokens"].default


def _tables(paths: Sequence[Path]) -> list[Any]:
    from router_model import ScoreTableError, read_score_tables

    try:
        return read_score_tables(paths)
    except ScoreTableError as exc:
        fail(str(exc))


def _embedder(label: str, layer: int, max_tokens: int, dtype: str, config: Any = None) -> Any:
    """Load the router LLM named by ``label`` ("package:NAME" or "path:DIR")."""
    from router_model.backbone import HiddenStateEmbedder

    kind, _, value = label.partition(":")
    source = ModelSource(package=value) if kind == "package" else ModelSource(path=value)
    if config is not None and source.package:
        prepare_models(config)
    directory = source.location(get_settings().cache_dir)
    if not Path(directory).is_dir():
        fail(f"router model {label} is not prepared here (run `mixserve models prepare`)")
    embedder = HiddenStateEmbedder(directory, layer, max_tokens, dtype=dtype)
    embedder.load()
    return embedder


def _embed(embedder: Any, tables: Sequence[Any], what: str) -> np.ndarray:
    return embed_queries(embedder, [q for t in tables for q in t.queries], what)


def embed_queries(embedder: Any, queries: list[str], what: str) -> np.ndarray:
    """Embeddings of ``queries``, cached on disk, with a progress bar."""
    from router_model.embed_cache import cached_embeddings

    cache = get_settings().cache_dir / "router-embeddings"
    with progress() as bars:
        task = bars.add_task(f"embedding {len(queries)} {what} queries", total=len(queries))
        rows = cached_embeddings(
            embedder.embed,
            embedder.spec.fingerprint(),
            queries,
            cache,
            lambda n: bars.advance(task, n),
        )
    return rows


def _prices(paths: Sequence[Path], explicit: Path | None) -> dict[str, dict[str, float]]:
    """The price table given, else the ``models.json`` beside the score tables, if any."""
    from router_model.reports import read_prices

    file = explicit or paths[0].parent / "models.json"
    if not file.is_file():
        if explicit is not None:
            fail(f"{explicit}: no such file")
        return {}
    try:
        return read_prices(file)
    except ValueError as exc:
        fail(str(exc))


def _params(items: Sequence[str]) -> dict[str, float | int]:
    params: dict[str, float | int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or not key or not np.isfinite(number):
            fail(f"--param {item!r}: expected NAME=NUMBER")
        params[key] = int(number) if number.is_integer() and "." not in value else number
    return params


@router_app.command("train")
def train(
    scores: ScoresOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Artifact directory to write.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    head: Annotated[str, typer.Option(help="Learned head, by registered name.")] = "prior",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Head parameter NAME=NUMBER.")
    ] = None,
    folds: Annotated[int, typer.Option(min=0, help="Cross-validation folds (0: skip).")] = 5,
    cv: CvOpt = None,
    prices: Annotated[Path | None, typer.Option(help="Prices JSON (default: models.json).")] = None,
    layer: Annotated[
        int,
        typer.Option(
            min=1,
            help="Router LLM layer the head reads (the served router runs this deep). Layer "
            "1 by default: the heads' accuracy is flat from there, at ~10 ms a query.",
        ),
    ] = 1,
    max_tokens: Annotated[
        int | None, typer.Option(min=8, help="Query tokens read (default: the config's).")
    ] = None,
) -> None:
    """Train a learned head on score tables; the backbone and layer come from the config."""
    from router_model.artifact import RouterArtifact, save_artifact
    from router_model.heads import head_class, head_names
    from router_model.train import train_head

    cfg = load_checked(config)
    params = _params(param or [])
    try:
        if head_class(head).kind != "scores":
            raise ValueError(f"{head!r} is a few-shot head; learned heads: {head_names('scores')}")
        head_class(head)(**params)
    except ValueError as exc:
        fail(str(exc))
    tables = _tables(scores)
    models = tables[0].models
    if len(models) < 2:
        fail(f"the score tables score one model ({models[0]}): a router needs two to choose from")
    unknown = sorted(set(cfg.router.models.values()) - set(models))
    if unknown:
        fail(f"router.models in {config} names models the score tables lack: {', '.join(unknown)}")
    if folds == 1:
        fail("--folds must be 0 (no cross-validation) or at least 2")
    # by default both yardsticks (leaving a table out needs two); --folds 0 skips them
    default = "none" if folds == 0 else "both" if len(tables) > 1 else "stratified"
    stratified, loto = cv_modes(cv, folds, len(tables), default)
    r = cfg.router
    label = r.model.label()
    depth, width = layer, max_tokens or r.max_query_tokens
    try:
        embedder = _embedder(label, depth, width, r.dtype, cfg)
    except ValueError as exc:  # e.g. a layer past the model's depth
        fail(str(exc))
    x = _embed(embedder, tables, "training")
    try:
        fitted, meta = train_head(head, params, tables, x, folds if stratified else 0, loto)
    except ValueError as exc:
        fail(str(exc))
    artifact = RouterArtifact(
        head, fitted, embedder.spec, label, models, _prices(scores, prices), meta
    )
    path = save_artifact(artifact, out_dir)
    fit: Any = meta["head_fit"]
    for note in fit.get("notes", []):
        err.print(f"note: {note}", highlight=False)
    if "far" in fit:
        err.print(
            f"fallback: the global table beyond {fit['far']:g} of the nearest group's reach "
            f"(blend {fit['blend']:g}, temperature {fit['temperature']:g}, residual weight "
            f"{fit['far_weight']:g} there; {fit['fallback_criterion']})",
            highlight=False,
        )
    if "l2_criterion" in fit:
        err.print(f"l2 {fit['l2']:g}, chosen by {fit['l2_criterion']}", highlight=False)
    if "criterion" in fit:
        err.print(
            f"residual weight {fit['residual_weight']:g}, chosen by inner cross-validation "
            f"({fit['criterion']})",
            highlight=False,
        )
    print_cv(meta.get("cross_validation"), meta.get("leave_one_table_out"))
    out.print(f"router artifact written to {path}", highlight=False)


def _load_artifact(path: Path) -> Any:
    from router_model import ArtifactError, load_artifact

    try:
        return load_artifact(path)
    except ArtifactError as exc:
        fail(str(exc))


def _artifact_embedder(artifact: Any) -> Any:
    from router_model import ArtifactError

    spec = artifact.backbone
    embedder = _embedder(artifact.backbone_model, spec.layer, spec.max_tokens, spec.dtype)
    try:
        artifact.check_backbone(embedder.spec)
    except ArtifactError as exc:
        fail(str(exc))
    return embedder


def _checked_tables(artifact: Any, scores: Sequence[Path]) -> list[Any]:
    tables = _tables(scores)
    missing = sorted(set(artifact.models) - set(tables[0].models))
    if missing:
        fail(f"score tables lack models the router scores: {', '.join(missing)}")
    return [t.with_models(artifact.models) for t in tables]


def _relative_costs(artifact: Any) -> np.ndarray:
    from router_model import relative_costs

    return relative_costs(artifact.price_pairs(), NOMINAL_IN, NOMINAL_OUT)


def _predict(
    artifact: Any, scores: Sequence[Path]
) -> tuple[Any, list[Any], np.ndarray, np.ndarray]:
    """(embedder, tables, embeddings, predicted quality) of the artifact on ``scores``."""
    artifact_embedder = _artifact_embedder(artifact)
    tables = _checked_tables(artifact, scores)
    x = _embed(artifact_embedder, tables, "evaluation")
    return artifact_embedder, tables, x, artifact.head.predict(x)


@router_app.command("eval")
def evaluate(
    router: RouterOpt,
    scores: ScoresOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    sweep_cost: Annotated[
        bool, typer.Option("--sweep-cost", help="Add RouteLLM's APGR/CPT and the cost curve.")
    ] = False,
    predictions: Annotated[
        Path | None, typer.Option(help="Write one JSON line per query here.")
    ] = None,
    tradeoff: Annotated[float, typer.Option(min=0, help="lambda for the choice.")] = 0.0,
    latency_samples: Annotated[int, typer.Option(min=1, help="Single queries timed.")] = 200,
    compile: Annotated[
        bool, typer.Option("--compile", help="Time the router LLM under torch.compile.")
    ] = False,
    cv: CvOpt = None,
    folds: Annotated[int, typer.Option(min=2, help="Folds of --cv stratified.")] = 5,
) -> None:
    """Score a router artifact on score tables against single models, random and oracle;
    with --cv, also fit its head anew on these tables and judge it out of sample."""
    from router_model.evaluate import average_report, cost_sweep, table_report
    from router_model.reports import query_costs, routing_latency, write_predictions

    artifact = _load_artifact(router)
    if predictions is not None and not predictions.parent.is_dir():
        fail(f"--predictions: folder {predictions.parent} does not exist")
    stratified, loto = cv_modes(cv, folds, len(scores), "none")
    embedder, tables, x, predicted = _predict(artifact, scores)
    refit = refit_cv(artifact, tables, x, stratified, loto, folds)
    if compile:
        embedder.compile_now()
    choice = np.argmax(predicted - tradeoff * _relative_costs(artifact), axis=1)
    files: dict[str, Any] = {}
    start = 0
    for t in tables:
        rows = slice(start, start + len(t))
        report = table_report(t, choice[rows])
        if sweep_cost:
            costs = query_costs(artifact.price_pairs(), t.queries, NOMINAL_OUT)
            report.update(cost_sweep(t.earned(), predicted[rows], costs))
            report.pop("strong_model_index")
        files[t.name] = report
        start += len(t)
    queries = [q for t in tables for q in t.queries]
    with progress() as bars:
        timed = min(latency_samples, len(queries))
        warm = min(5, timed)  # routing_latency warms up on its first few picks
        task = bars.add_task(f"timing {timed} single routing decisions", total=timed + warm)

        def decide(query: str) -> Any:
            bars.advance(task)
            return artifact.head.predict(embedder.embed([query])).argmax()

        latency = routing_latency(decide, queries, latency_samples)
    result = {
        "files": files,
        "average": average_report(list(files.values())),
        "latency_ms": latency,
        **refit,
    }
    if predictions is not None:
        write_predictions(predictions, queries, predicted, choice, artifact.models)
    if as_json:
        print(json.dumps(result))
        return
    for name, report in files.items():
        extra = f", APGR {report['apgr']:.3f}" if sweep_cost else ""
        out.print(
            f"{name}: router {report['router']:.4f}, task prior (the file's best model) "
            f"{report['best_single']:.4f}, oracle {report['oracle']:.4f}, random "
            f"{report['random']:.4f}{extra}",
            highlight=False,
        )
    avg = result["average"]
    single = avg["best_single_model"]
    out.print(
        f"average: router {avg['router']:.4f}, task prior {avg['best_single']:.4f}, best single "
        f"model {single['accuracy']:.4f} ({single['model']}), oracle {avg['oracle']:.4f}; "
        f"latency p50 {result['latency_ms']['p50']:.1f} ms",
        highlight=False,
    )
    print_cv(refit.get("cross_validation"), refit.get("leave_one_table_out"))


@router_app.command("calibrate")
def calibrate(
    router: RouterOpt,
    scores: ScoresOpt,
    target_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Wanted share of calls to the priciest model.")
    ],
) -> None:
    """Find the lambda that sends ``target_share`` of these queries to the priciest model."""
    from router_model.calibrate import calibrate_tradeoff

    artifact = _load_artifact(router)
    relative = _relative_costs(artifact)
    if np.ptp(relative) == 0:
        fail(f"{router}: every model has the same price, so lambda has nothing to trade")
    *_, predicted = _predict(artifact, scores)
    result = calibrate_tradeoff(predicted, relative, target_share)
    print(json.dumps(result))
