"""docs/configuration.md is the config models' own reference (``mixserve config
reference``): it is not stale, it lists every key of every model a config file reaches
with its type, bounds and default, and the command writes it atomically or says in one
line why it cannot."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel
from typer.testing import CliRunner

import orchestrator.config as config
from orchestrator.cli.main import app
from orchestrator.config.reference import models, reference
from tests.helpers.paths import ROOT

DOC = ROOT / "docs" / "configuration.md"


def test_the_reference_in_the_repository_is_what_the_models_give():
    assert DOC.read_text() == reference() + "\n", (
        "docs/configuration.md is stale: run `mixserve config reference --out "
        "docs/configuration.md`"
    )


def test_every_config_model_a_file_reaches_has_a_row_per_key():
    text = reference()
    reached = models()
    exported = {
        v for v in vars(config).values() if isinstance(v, type) and issubclass(v, BaseModel)
    }
    # every model config exports is in it, but the base its engine and specialist models share
    assert exported - set(reached) == {config.EngineSettings}
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    by_name = {s.split("\n", 1)[0]: s for s in sections}
    for model in reached:
        rows = re.findall(r"^\| `(\w+)` \|", by_name[model.__name__], flags=re.M)
        assert rows == list(model.model_fields), model.__name__


def test_a_row_gives_type_bounds_default_and_description():
    text = reference()
    assert "| `replicas` | int (>= 1, <= 256) | `1` | Number of replicas. |" in text
    assert '| `search` | `"hybrid"` \\| `"dense"` | `"hybrid"` |' in text
    assert "| `specialists` | list of [SpecialistConfig](#specialistconfig)" in text
    assert "`router.early_exit`" in text  # where a nested model sits, by YAML path
    assert "engine-\\<name>" in text and "engine-<name>" not in text  # not read as HTML


def test_the_command_writes_the_file_or_says_why_not(tmp_path: Path):
    runner = CliRunner()
    target = tmp_path / "configuration.md"
    done = runner.invoke(app, ["config", "reference", "--out", str(target)])
    assert done.exit_code == 0, done.output
    assert target.read_text() == reference() + "\n"
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed
    failed = runner.invoke(app, ["config", "reference", "--out", str(tmp_path / "no" / "x.md")])
    assert failed.exit_code == 1
    assert "cannot write" in failed.output and "Traceback" not in failed.output
