"""Grounding: plant 100 facts in pages of Debian's Python documentation, ask about each,
and count how often the chunk holding the fact is among the top 5 hits
(``harness/mixserve_bench/retrieval_eval/grounding.py``; the hybrid search's word weight
is checked on a tuning set of other pages and facts first).

    .venv/bin/python benchmarks/retrieval_grounding.py --files 200

Writes ``benchmarks/results/retrieval_grounding.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixserve_bench.retrieval_eval import debian_corpus, grounding
from orchestrator.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--facts", type=int, default=100)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/retrieval_grounding.json"
    )
    args = parser.parse_args()
    cache = get_settings().cache_dir
    result = grounding(debian_corpus(cache, args.files), cache, args.facts)
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
