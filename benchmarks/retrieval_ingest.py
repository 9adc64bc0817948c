"""Ingest speed and embedding fidelity on a real corpus, the Python 3.11 documentation
from Debian's ``python3.11-doc`` package (``harness/mixserve_bench/retrieval_eval/ingest.py``): the
encoder in fp32 and int8 side by side in alternating rounds, the cosine of every int8
vector to its fp32 one, and the whole ``mixserve index build`` path with its breakdown.

    .venv/bin/python benchmarks/retrieval_ingest.py --chunks 768 --rounds 3 --files 40

Writes ``benchmarks/results/retrieval_ingest.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixserve_bench.retrieval_eval import debian_corpus, ingest_speed
from orchestrator.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/retrieval_ingest.json"
    )
    args = parser.parse_args()
    cache = get_settings().cache_dir
    result = ingest_speed(
        debian_corpus(cache), cache, args.chunks, args.rounds, args.files, args.max_tokens
    )
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
