"""Every `mixserve` command the README and docs/ show in a code block, that needs no
running service, works exactly as written (run from the checkout, as a reader would), through the
`mixserve` app in this process (the entry point itself runs in a subprocess in the
packaging test, the cluster tests and the e2e tier)."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.helpers.cli import invoke_mixserve, require_prepared_models
from tests.helpers.paths import ROOT

OFFLINE = {"build", "config", "dashboards", "index", "models", "router"}  # the rest need a service


def readme_commands() -> list[list[str]]:
    """The commands in the README's code blocks, then each of docs/'s pages' in name order."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S)
    found = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():  # continued lines joined
            if line.startswith("mixserve "):  # a command, not curl's or Python's lines
                found.append(shlex.split(line, comments=True))
    return found


def test_the_readme_and_docs_show_offline_commands():
    subcommands = {c[1] for c in readme_commands()}
    assert {"config", "dashboards", "index", "router"} <= subcommands


def test_every_offline_readme_command_works_as_written():
    require_prepared_models()
    samples = ROOT / "examples" / "sample_score_tables"
    assert samples.is_dir(), f"the README's router examples read {samples}"
    commands = [c for c in readme_commands() if c[1] in OFFLINE]
    for words in commands:  # in order: eval reads what train wrote
        proc = invoke_mixserve(*words[1:])
        if proc.returncode != 0:
            pytest.fail(f"`{shlex.join(words)}` exited {proc.returncode}: {proc.stderr[-1500:]}")
