"""The real corpus the retrieval benchmarks search: Debian's Python 3.11 and Linux 6.1
documentation (``apt-get download`` into the cache on first use, never committed), read
and chunked as ``mixserve index build`` does, and embedded with the int8 MiniLM encoder
at 128 tokens; the vectors are cached (``harness/mixserve_bench/retrieval_eval/corpus.py``).

    .venv/bin/python benchmarks/retrieval_corpus.py --chunks 100000
"""

from __future__ import annotations

import argparse
import time

from mixserve_bench.retrieval_eval import debian_corpus, real_vectors
from orchestrator.settings import get_settings

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    cache = get_settings().cache_dir
    started = time.perf_counter()
    vectors, _ = real_vectors(parser.parse_args().chunks, debian_corpus(cache), cache)
    print(f"{len(vectors)} vectors in {time.perf_counter() - started:.0f} s")
