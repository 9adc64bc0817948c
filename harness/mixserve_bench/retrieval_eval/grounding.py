"""Grounding: plant facts in a real corpus, ask about each, and count how often the
chunk holding the fact is among the top 5 hits.

Each of ``count`` pages gets one made-up fact inserted as a paragraph at a random
paragraph break (written as a Markdown copy of the page, which replaces the page). The
facts come from five templates with varied names and numbers, so they resemble one
another and the question must find its own. The collection is built as ``mixserve index
build`` builds it (int8 MiniLM, 512-character chunks); questions are searched as the
retriever searches them.

The hybrid search's word weight is chosen first on a tuning set of its own (the corpus's
tuning pages, other facts from another seed); the figures reported are the test set's
at that weight.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mixserve_bench.retrieval_eval.corpus import MODEL, Corpus
from retrieval.build import ingest
from retrieval.collection import LEXICAL_WEIGHT, LiveCollection
from retrieval.documents import Unreadable, read
from retrieval.embed import Embedder
from retrieval.store import CollectionStore

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
WEIGHTS = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0]
Fact = tuple[str, str]  # (the fact, its question)


def facts(count: int, seed: int = 11) -> list[Fact]:
    rng = np.random.default_rng(seed)
    out: list[Fact] = []
    seen: set[tuple[str, str]] = set()
    while len(out) < count:
        thing, town = str(rng.choice(THINGS)), str(rng.choice(TOWNS))
        if (thing, town) in seen:
            continue
        seen.add((thing, town))
        fact, question = TEMPLATES[len(out) % len(TEMPLATES)]
        values = {"thing": thing, "town": town, "person": rng.choice(PEOPLE),
                  "year": int(rng.integers(1850, 2020)), "n": int(rng.integers(3, 400)),
                  "price": int(rng.integers(2, 90))}  # fmt: skip
        out.append((fact.format(**values), question.format(**values)))
    return out


def plant(pages: list[Path], root: Path, folder: Path, planted: list[Fact], seed: int) -> None:
    """Copies of ``pages`` under ``folder``, one fact in each of ``len(planted)`` of them."""
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(len(pages), len(planted), replace=False).tolist())
    k = 0
    for i, page in enumerate(pages):
        name = page.relative_to(root).as_posix()
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if i not in chosen:
            target.write_bytes(page.read_bytes())
            continue
        try:
            text = read(page, name).text
        except Unreadable:
            text = ""
        breaks = [j for j in range(len(text) - 1) if text[j : j + 2] == "\n\n"] or [len(text)]
        at = breaks[int(rng.integers(0, len(breaks)))]
        target.with_suffix(".md").write_text(f"{text[:at]}\n\n{planted[k][0]}\n\n{text[at:]}")
        k += 1


def ranks_at(
    live: LiveCollection, embedder: Embedder, planted: list[Fact], weight: float | None
) -> list[int | None]:
    """Where each fact's chunk ranks in the top 5 of its question (None: not there);
    ``weight``: the word half's share of the hybrid score, None for vectors alone."""
    questions = [q for _, q in planted]
    vectors = embedder.embed(questions)
    version = live.current or live.open()
    if weight is not None:
        version.lexical_weight = weight
    hits = live.search(vectors, 5, None if weight is None else questions)
    return [
        next((r for r, h in enumerate(found, 1) if fact in h.text), None)
        for (fact, _), found in zip(planted, hits, strict=True)
    ]


def top5(ranks: list[int | None]) -> float:
    return sum(r is not None for r in ranks) / max(len(ranks), 1)


def _collection(
    tmp: Path, name: str, corpus: Corpus, pages: list[Path], planted: list[Fact], seed: int,
    embedder: Embedder,
) -> tuple[LiveCollection, Any]:  # fmt: skip
    folder = tmp / name
    plant(pages, corpus.root, folder, planted, seed)
    store = CollectionStore(tmp / "data", name)
    report = ingest(store, embedder, [folder], folder)
    return LiveCollection(store, embedder.identity()), report


def grounding(corpus: Corpus, cache: Path, count: int) -> dict[str, Any]:
    count = min(count, len(corpus.pages), len(corpus.tune_pages))
    planted, tune_facts = facts(count), facts(count, seed=21)
    embedder = Embedder(MODEL, "int8", 256, cache)
    embedder.load()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        live, _ = _collection(tmp, "tune", corpus, corpus.tune_pages, tune_facts, 22, embedder)
        tuning = {w: top5(ranks_at(live, embedder, tune_facts, w)) for w in WEIGHTS}
        weight = max(WEIGHTS, key=lambda w: (tuning[w], -abs(w - 0.5)))
        live, report = _collection(tmp, "test", corpus, corpus.pages, planted, 12, embedder)
        ranks = ranks_at(live, embedder, planted, weight)
        shipped = ranks_at(live, embedder, planted, LEXICAL_WEIGHT)
        dense = ranks_at(live, embedder, planted, None)
    by_kind: dict[str, list[bool]] = {}
    for i, r in enumerate(ranks):
        kind = TEMPLATES[i % len(TEMPLATES)][1].split(" the ")[0]
        by_kind.setdefault(kind, []).append(r is not None)
    return {
        "corpus": f"{len(corpus.pages)} pages of {corpus.name}, {report.chunks} chunks",
        "facts": len(planted),
        "grounding_top5": top5(shipped),
        "search": "hybrid (vectors + BM25, convex combination of min-max scaled scores)",
        "lexical_weight": LEXICAL_WEIGHT,
        "tuning": {
            "set": f"{len(corpus.tune_pages)} other pages, {len(tune_facts)} other facts",
            "top5_by_weight": tuning,
            "best_weight": weight,
            "test_top5_at_best": top5(ranks),
        },
        "dense_only_top5": top5(dense),
        "top1": sum(r == 1 for r in shipped) / len(planted),
        "by_question_kind": {k: sum(v) / len(v) for k, v in by_kind.items()},
        "missed": [planted[i][1] for i, r in enumerate(shipped) if r is None],
        "index": report.index,
    }
