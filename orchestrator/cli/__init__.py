"""The ``mixserve`` command line (typer), thin over the packages below it.

Public API: ``main`` (the console script), ``app`` (the typer app).
"""

from orchestrator.cli.main import app, main

__all__ = ["app", "main"]
