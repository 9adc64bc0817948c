"""``mixserve router probe``: train the early-exit probe of ``router.early_exit``.

Thin: the fitting is ``router_model.probe``'s. Labelled queries come from JSONL files
with a ``query`` per line (score tables are such files), each file given to the
specialist whose kind it holds; the config's descriptions and examples are added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from orchestrator.cli.common import DEFAULT_CONFIG, ConfigOpt, err, fail, load_checked, out
from orchestrator.cli.router import _embedder, embed_queries


def _tasks(specs: list[str], names: list[str]) -> list[tuple[Path, int]]:
    tasks = []
    for spec in specs:
        path, sep, name = spec.rpartition("=")
        if not sep or not path:
            fail(f"--task {spec!r}: expected FILE=SPECIALIST")
        if name not in names:
            fail(f"--task {spec!r}: {name!r} is not a specialist ({', '.join(names)})")
        tasks.append((Path(path), names.index(name)))
    return tasks


def probe(
    task: Annotated[
        list[str], typer.Option("--task", help="FILE=SPECIALIST: JSONL queries of that kind.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Artifact directory to write.")],
    layer: Annotated[int, typer.Option(min=1, help="Router LLM layer the probe reads.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    shot_weight: Annotated[
        int, typer.Option(min=0, help="Times each description and example counts.")
    ] = 20,
    l2: Annotated[float, typer.Option(min=0, help="Ridge penalty of the probe.")] = 1000.0,
    folds: Annotated[int, typer.Option(min=0, help="Cross-validation folds (0: skip).")] = 5,
) -> None:
    """Train the early-exit probe: which specialist each query belongs to, read at an
    early layer; writes an artifact for `router.early_exit.artifact`."""
    from router_model.artifact import RouterArtifact, save_artifact
    from router_model.probe import fit_probe, group_accuracy, out_of_fold_probe, shot_rows
    from router_model.scores import ScoreTableError, read_queries

    cfg = load_checked(config)
    names = [s.name for s in cfg.specialists]
    if folds == 1:
        fail("--folds must be 0 (no cross-validation) or at least 2")
    r = cfg.router
    if layer >= r.layer:
        fail(f"--layer {layer} must be below router.layer ({r.layer}): the probe exits early")
    tasks = _tasks(task, names)
    try:
        files = [read_queries(path) for path, _ in tasks]
    except ScoreTableError as exc:
        fail(str(exc))
    queries = [q for f in files for q in f]
    labels = np.concatenate([np.full(len(f), n) for f, (_, n) in zip(files, tasks, strict=True)])
    groups = np.concatenate([np.full(len(f), i) for i, f in enumerate(files)])
    embedder = _embedder(r.model.label(), layer, r.max_query_tokens, r.dtype, cfg)
    x = embed_queries(embedder, queries, f"layer-{layer}")
    shots, shot_labels = shot_rows(
        [embedder.embed([s.description, *s.examples]) for s in cfg.specialists]
    )
    training: dict[str, object] = {
        "files": [
            {"name": p.name, "n": len(f), "specialist": names[n]}
            for (p, n), f in zip(tasks, files, strict=True)
        ],
        "shots": len(shots),
        "shot_weight": shot_weight,
        "l2": l2,
    }
    if folds:
        scores = out_of_fold_probe(
            x, labels, groups, shots, shot_labels, len(names),
            folds=folds, shot_weight=shot_weight, l2=l2,
        )  # fmt: skip
        accuracy = group_accuracy(scores.argmax(1), labels, groups)
        training["cross_validation"] = {"folds": folds, "accuracy": round(accuracy, 4)}
        err.print(f"cross-validated ({folds} folds): {accuracy:.4f} to the labelled specialist")
    head = fit_probe(x, labels, shots, shot_labels, len(names), shot_weight=shot_weight, l2=l2)
    artifact = RouterArtifact("linear", head, embedder.spec, r.model.label(), names, {}, training)
    out.print(f"early-exit probe written to {save_artifact(artifact, out_dir)}", highlight=False)
