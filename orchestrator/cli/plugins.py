"""Commands other distributions add to ``mixserve``: each is an entry point of the
``mixserve.cli`` group that names a typer app (the benchmark harness, ``mixserve-bench``
in ``harness/``, adds ``bench``). The service never imports them; they may import
``orchestrator.cli.common`` for its conventions (one-line errors, progress bars).

A command whose distribution is missing, or does not import, stays listed and says in
one line how to install it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from orchestrator.cli.common import fail

GROUP = "mixserve.cli"
# the commands a user may expect, and where they come from
KNOWN = {"bench": "the benchmark harness (mixserve-bench)"}
INSTALL = "pip install ./harness (from a mixserve checkout; `make setup` does it)"


def _missing(app: typer.Typer, name: str, why: str) -> None:
    message = f"mixserve {name}: {why}; install it with: {INSTALL}"

    @app.command(
        name,
        help=f"Not installed here: {INSTALL}.",
        context_settings={
            "allow_extra_args": True,
            "ignore_unknown_options": True,
            "help_option_names": [],
        },
    )
    def command(ctx: typer.Context) -> None:
        fail(message)


def add_plugins(app: typer.Typer) -> None:
    """Add every installed ``mixserve.cli`` command to ``app``."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    for name in sorted(set(found) | set(KNOWN)):
        what = KNOWN.get(name, f"the {name!r} command")
        if name not in found:
            _missing(app, name, f"{what} is not installed")
            continue
        try:
            sub = found[name].load()
        except ImportError as exc:
            _missing(app, name, f"{what} does not import ({exc})")
            continue
        if not isinstance(sub, typer.Typer):
            _missing(app, name, f"{what} names {found[name].value}, which is no typer app")
            continue
        app.add_typer(sub, name=name)
