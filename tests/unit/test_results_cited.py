"""``benchmarks/results/`` keeps only the runs the docs cite: every file there is named on
a page a user reads (README.md, docs/), by name, by a pattern (``overhead_openai_*.json``,
``overhead_ray_serve_llm_{plain,tools}.json``) or as the PNG plot beside a cited JSON; and
every result a page names by its path exists."""

from __future__ import annotations

import fnmatch
import re

from tests.helpers.paths import ROOT

RESULTS = ROOT / "benchmarks" / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOKEN = re.compile(r"[\w./*{},-]+\.(?:json|png)")


def braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [e for alt in match.group(1).split(",") for e in braces(head + alt + tail)]


def cited() -> set[str]:
    text = "\n".join(page.read_text() for page in PAGES)
    found = set()
    for token in TOKEN.findall(text):
        token = token.removeprefix("benchmarks/results/")
        found.update(braces(token))
    return found


def test_every_result_is_cited_on_a_page():
    names = cited()
    uncited = []
    for path in sorted(p for p in RESULTS.rglob("*") if p.is_file()):
        rel = path.relative_to(RESULTS).as_posix()
        keys = {rel, path.name}
        if path.suffix == ".png":  # "results in `x.json` and `.png`": the plot of a cited run
            keys |= {rel.removesuffix(".png") + ".json", path.stem + ".json"}
        if not any(fnmatch.fnmatch(key, name) for key in keys for name in names):
            uncited.append(rel)
    assert not uncited, f"results no page cites (cite them or delete them): {uncited}"


def test_every_result_a_page_names_by_its_path_exists():
    text = "\n".join(page.read_text() for page in PAGES)
    missing = [
        name
        for token in re.findall(r"benchmarks/results/[\w./*{},-]+\.(?:json|png)", text)
        for name in braces(token.removeprefix("benchmarks/results/"))
        if not any(RESULTS.glob(name))
    ]
    assert not missing, f"pages name results that are not there: {missing}"
