"""Search at scale: recall@10 against exact search, single-query latency and memory per
vector of each index kind, on ``--n`` vectors of dimension 384: ``--real`` real MiniLM
embeddings of Debian's Python and Linux kernel documentation, the rest synthetic, 1,000
real queries (``harness/mixserve_bench/retrieval_eval/scale.py``); then the IVF-PQ index
in ``--shards`` Ray actors against the whole.

    .venv/bin/python benchmarks/retrieval_scale.py --n 1000000 --real 100000

Writes ``benchmarks/results/retrieval_scale.json`` and ``retrieval_scale.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixserve_bench.retrieval_eval import debian_corpus, real_vectors, scale
from mixserve_bench.retrieval_eval.scale import plot
from orchestrator.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--real", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq")
    parser.add_argument("--shards", type=int, default=4, help="0: no sharded run")
    parser.add_argument("--synthetic", choices=["shaped", "isotropic"], default="shaped")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/retrieval_scale.json"
    )
    args = parser.parse_args()
    cache = get_settings().cache_dir
    real, chunks = real_vectors(args.real, debian_corpus(cache), cache)
    result = scale(
        real, chunks, args.n, args.queries, args.kinds.split(","), args.shards,
        args.synthetic, cache,
    )  # fmt: skip
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(result["indexes"], args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
