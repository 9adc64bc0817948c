"""Commands other distributions add to ``mixserve`` (``orchestrator.cli.plugins``): the
installed harness adds ``bench``; a missing, broken or wrong entry point leaves a command
that says in one line how to install it, and the rest of the CLI works."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli import plugins

HINT = "install it with: pip install ./harness (from a mixserve checkout; `make setup` does it)"


def cli(monkeypatch: pytest.MonkeyPatch, *found: EntryPoint) -> typer.Typer:
    monkeypatch.setattr(plugins, "entry_points", lambda group: [*found])
    app = typer.Typer()

    @app.command("hello")
    def hello() -> None:
        print("hello")

    plugins.add_plugins(app)
    return app


def one_line_error(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 1, result.output
    [line] = result.output.splitlines()
    assert line.endswith(HINT), line
    return line


def test_the_installed_harness_adds_bench():
    from orchestrator.cli.main import app

    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("run", "sweep", "overhead", "overload", "ceiling", "skew", "retrieval"):
        assert command in result.output


def test_without_the_harness_bench_says_how_to_install_it(monkeypatch):
    app = cli(monkeypatch)
    for args in (["bench"], ["bench", "ceiling", "--rounds", "2"], ["bench", "--help"]):
        line = one_line_error(app, *args)
        assert "mixserve bench: the benchmark harness (mixserve-bench) is not installed" in line
    assert CliRunner().invoke(app, ["hello"]).output == "hello\n"


def test_a_harness_that_does_not_import_is_named(monkeypatch):
    broken = EntryPoint("bench", "no_such_harness.cli:bench_app", plugins.GROUP)
    line = one_line_error(cli(monkeypatch, broken), "bench", "run")
    assert "does not import (No module named 'no_such_harness')" in line


def test_an_entry_point_that_is_no_typer_app_is_refused(monkeypatch):
    wrong = EntryPoint("bench", "orchestrator.cli.plugins:GROUP", plugins.GROUP)
    line = one_line_error(cli(monkeypatch, wrong), "bench")
    assert "names orchestrator.cli.plugins:GROUP, which is no typer app" in line


def test_another_distributions_command_is_added(monkeypatch):
    extra = EntryPoint("extra", "mixserve_bench.cli:bench_app", plugins.GROUP)
    app = cli(monkeypatch, extra)
    assert CliRunner().invoke(app, ["extra", "--help"]).exit_code == 0
    one_line_error(app, "bench")  # still missing: its own entry point is not there
