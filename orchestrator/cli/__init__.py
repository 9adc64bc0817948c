"""The ``mixserve`` command line (typer), thin over the packages below it.

Public API: ``orchestrator.cli.main.main`` (the console script) and
``orchestrator.cli.main.app`` (the typer app). This package imports nothing itself, so a
command another distribution adds (``orchestrator.cli.plugins``) can import
``orchestrator.cli.common`` without loading the whole command line first.
"""
