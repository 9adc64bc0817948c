"""The yardsticks of ``mixserve router train`` and ``eval``: stratified k-fold CV (tasks
the head saw) and each table left out in turn (a task it never saw), the ``--cv`` option
that picks them, and how they print."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import typer

from orchestrator.cli.common import err, fail

CV_MODES = ("stratified", "leave-one-table-out", "both", "none")
CvOpt = Annotated[
    str | None,
    typer.Option(
        "--cv",
        help="Yardstick: stratified (k folds, in distribution), leave-one-table-out (each "
        "table judged by a head fitted on the others: a task it never saw), both, or none.",
    ),
]


def cv_modes(cv: str | None, folds: int, tables: int, default: str) -> tuple[bool, bool]:
    """(stratified, leave one table out) for ``--cv`` (``default`` when not given)."""
    mode = cv if cv is not None else default
    if mode not in CV_MODES:
        fail(f"--cv {mode!r}: expected one of {', '.join(CV_MODES)}")
    stratified = mode in ("stratified", "both")
    loto = mode in ("leave-one-table-out", "both")
    if stratified and folds < 2:
        fail(f"--cv {mode} needs --folds of at least 2")
    if loto and tables < 2:
        fail(f"--cv {mode} needs at least two score tables (one is left out at a time), given 1")
    return stratified, loto


def print_cv(cv: Any, loto: Any) -> None:
    if cv:
        avg = cv["average"]
        err.print(
            f"cross-validated ({cv['folds']} folds): router {avg['router']:.4f}, "
            f"best single per file {avg['best_single']:.4f}, oracle {avg['oracle']:.4f}",
            highlight=False,
        )
    if loto:
        avg = loto["average"]
        below = avg["tables_below_best_single"]
        err.print(
            f"leave one table out: router {avg['router']:.4f}, best single model of the other "
            f"tables {avg['best_single']:.4f}, each table's own best {avg['table_best']:.4f}; "
            + (f"below the best single on {', '.join(below)}" if below else "no table below it"),
            highlight=False,
        )


def refit_cv(
    artifact: Any, tables: list[Any], x: np.ndarray, stratified: bool, loto: bool, folds: int
) -> dict[str, Any]:
    """The artifact's head (its name and parameters) fitted anew on these tables and
    judged by the yardsticks asked for."""
    from router_model.train import cross_validate, leave_one_table_out

    name, params = artifact.head_name, dict(artifact.head.params)
    found: dict[str, Any] = {}
    try:
        if stratified:
            found["cross_validation"] = cross_validate(name, params, tables, x, folds)
        if loto:
            found["leave_one_table_out"] = leave_one_table_out(name, params, tables, x)
    except ValueError as exc:
        fail(str(exc))
    return found
