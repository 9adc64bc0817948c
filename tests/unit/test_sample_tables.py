"""The sample score tables the README's router examples run on
(``examples/sample_score_tables/``): a few hundred rows, each a row of the full published table
it names, drawn as ``sample.py`` says (running it again writes the same bytes), readable
as score tables, with their sources and licence named."""

from __future__ import annotations

import subprocess
import sys

from router_model.scores import read_score_table
from tests.helpers.paths import ROOT, SHARED_DATA

SAMPLES = ROOT / "examples" / "sample_score_tables"


def shipped() -> list[str]:
    return sorted(p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.jsonl"))


def test_the_sample_is_small_and_every_row_is_a_row_of_its_full_table():
    names = shipped()
    assert names, "no sample tables"
    total = 0
    for name in names:
        rows = (SAMPLES / name).read_text(encoding="utf-8").split("\n")[:-1]
        full_lines = (SHARED_DATA / name).read_text(encoding="utf-8").split("\n")
        full = set(full_lines)
        assert len(rows) <= 0.3 * len(full_lines), f"{name}: not a small sample of its table"
        assert all(row in full for row in rows), f"{name}: a row not in the published table"
        assert len(set(rows)) == len(rows), name
        total += len(rows)
        table = read_score_table(SAMPLES / name)
        assert len(table.queries) == len(rows)
        prices = (SAMPLES / name).parent / "models.json"
        assert (
            prices.read_bytes() == (SHARED_DATA / name).parent.joinpath("models.json").read_bytes()
        )
    assert 0 < total <= 400, total


def test_sample_py_draws_exactly_the_shipped_rows(tmp_path):
    proc = subprocess.run(
        [sys.executable, SAMPLES / "sample.py", "--source", SHARED_DATA, "--out", tmp_path],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    drawn = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert drawn == shipped()
    for name in drawn:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


def test_a_missing_source_is_one_line_and_a_non_zero_exit(tmp_path):
    proc = subprocess.run(
        [sys.executable, SAMPLES / "sample.py", "--source", tmp_path, "--out", tmp_path / "o"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "cannot read" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_the_readme_names_the_sources_and_the_licence():
    text = (SAMPLES / "README.md").read_text()
    for needed in ("https://github.com/shuhao02/RouterDC", "https://github.com/lm-sys/RouteLLM",
                   "Apache-2.0", "sample.py"):  # fmt: skip
        assert needed in text
    for name in shipped():
        assert f"`{name}`" in text, name
