"""Helpers shared by the CLI modules: consoles, one-line failures, config loading,
progress bars, model preparation and the multi-value options."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from orchestrator import profiles
from orchestrator.config import ConfigError, MixserveConfig, load_config
from orchestrator.settings import get_settings

out = Console()
err = Console(stderr=True)
DEFAULT_CONFIG = profiles.DEFAULT
ConfigOpt = Annotated[
    str,
    typer.Option(
        "--config",
        "-c",
        help=f"Config YAML file, or a shipped profile ({', '.join(profiles.names())}).",
    ),
]
# options that take several values after one flag (`--scores a.jsonl b.jsonl`) as well
# as the flag repeated (`--scores a.jsonl --scores b.jsonl`), which is all typer knows
MULTI_VALUE_OPTIONS = ("--scores", "--mix", "--clients", "--rates")


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def write_out(text: str, out_file: Path | None) -> None:
    """``text`` to standard output, or to ``out_file`` through a temporary file renamed
    over it (a reader never sees half of it); a file that cannot be written is one line
    and exit 1."""
    if out_file is None:
        sys.stdout.write(text)
        return
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(out_file)
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror or exc}")
    err.print(f"wrote {out_file}", highlight=False)


def config_path(value: str | Path) -> Path:
    """The file ``--config`` names: a path, or a shipped profile's name."""
    return profiles.config_file(value)


def load_checked(value: str | Path) -> MixserveConfig:
    """The config ``--config`` names, validated, with its retrieval paths present; one
    line and exit 2 otherwise."""
    path = config_path(value)
    try:
        config = load_config(path)
    except ConfigError as exc:
        fail(f"{exc.source}: {'; '.join(exc.errors)}", 2)
    missing = missing_paths(config)
    if missing:
        fail(f"{path}: retrieval paths do not exist: {', '.join(missing)}", 2)
    return config


def missing_paths(config: MixserveConfig) -> list[str]:
    return [
        f"retrieval.collections[{i}].paths: {p}"
        for i, c in enumerate(config.retrieval.collections)
        for p in c.paths
        if not config.resolve(p).exists()
    ]


def progress() -> Progress:
    """Progress on stderr: a bar and done/total for a task with a total, else a spinner."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def expand_multi_values(argv: Sequence[str]) -> list[str]:
    """``--scores a b`` as ``--scores a --scores b``: every value after a multi-value
    option up to the next option is its own occurrence of the option."""
    out_args: list[str] = []
    current: str | None = None
    for arg in argv:
        if arg == "--":
            current = None
            out_args.append(arg)
        elif arg in MULTI_VALUE_OPTIONS:
            current = arg
            out_args.append(arg)
        elif current is not None and not arg.startswith("-"):
            if out_args[-1] != current:
                out_args.append(current)
            out_args.append(arg)
        else:
            current = None
            out_args.append(arg)
    return out_args


def _packages(config: MixserveConfig) -> list[str]:
    names = {s.model.package for s in config.specialists if s.backend == "vllm"}
    names.add(config.router.model.package)
    return sorted(n for n in names if n)


def prepare_models(config: MixserveConfig, force: bool = False) -> None:
    from weights import ModelPrepareError, prepare_model

    cache_dir = get_settings().cache_dir
    packages = _packages(config)
    with progress() as bars:
        overall = bars.add_task("models", total=len(packages))
        for package in packages:
            task = bars.add_task(f"{package}: starting", total=None)

            def step(label: str, task: TaskID = task, package: str = package) -> None:
                bars.update(task, description=f"{package}: {label}")

            try:
                path = prepare_model(package, cache_dir, force=force, step=step)
            except ModelPrepareError as exc:
                fail(str(exc))
            bars.update(task, description=f"{package}: ready at {path}", total=1, completed=1)
            bars.advance(overall)
        embedding = config.retrieval.embedding
        if config.retrieval.enabled and embedding.precision == "int8":
            from orchestrator.retrieval_setup import make_embedder

            task = bars.add_task(f"{embedding.package}: int8 encoder", total=None)
            try:
                path = make_embedder(embedding, cache_dir).prepare()
            except (RuntimeError, OSError) as exc:
                fail(f"{embedding.package}: int8 encoder not built: {exc}")
            bars.update(
                task, description=f"{embedding.package}: int8 at {path}", total=1, completed=1
            )
