"""The Grafana dashboard charts only metrics the service defines, and exports atomically."""

from __future__ import annotations

import json
import re
from pathlib import Path

from orchestrator.telemetry.dashboards import dashboard, export
from tests.helpers.cli import run_mixserve
from tests.helpers.paths import ROOT


def defined_metrics() -> set[str]:
    text = (ROOT / "orchestrator" / "telemetry" / "metrics.py").read_text()
    return set(re.findall(r'metrics\.\w+\(\s*"(mixserve_\w+)"', text))


def test_every_panel_queries_a_defined_metric():
    defined = defined_metrics()
    assert len(defined) == 14
    panels = dashboard()["panels"]
    used = set()
    for panel in panels:
        assert panel["targets"] and panel["datasource"] == "${datasource}"
        for target in panel["targets"]:
            for name in re.findall(r"ray_(mixserve_\w+)", target["expr"]):
                used.add(re.sub(r"_(total|bucket)$", "", name))
    assert used == defined  # every metric charted, no chart of a missing one


def test_export_writes_the_json_and_bad_folders_fail_in_one_line(tmp_path: Path):
    path = export(tmp_path / "dash")
    assert json.loads(path.read_text())["uid"] == "mixserve-overview"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_mixserve("dashboards", "export", str(blocker / "sub"))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "cannot write into" in lines[0]
