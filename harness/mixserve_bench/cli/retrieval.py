"""``mixserve bench retrieval``: retrieval against its targets on this machine, in one
run: ingest speed and embedding fidelity, recall and latency at ``--n`` vectors, the
grounding of planted facts, and search split over Ray-actor shards (a local Ray started
here and stopped after). The summary (``--json``: the last line printed) holds the
figures of the configuration chosen; ``--out`` writes everything measured, and the
recall/latency curves of the index kinds as a PNG beside it.

The corpus is Debian's Python and Linux documentation (``apt-get download`` into the
cache once), or ``--corpus DIR``: any folder of documents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mixserve_bench.cli.load import _write, bench_app
from mixserve_bench.cli.suites import JsonOpt, OutOpt
from orchestrator.cli.common import err, fail, out
from orchestrator.settings import get_settings


def _positive(value: int) -> int:
    if value < 1:
        raise typer.BadParameter("must be at least 1")
    return value


Count = Annotated[int, typer.Option(callback=_positive)]


@bench_app.command("retrieval")
def retrieval(
    n: Annotated[
        int, typer.Option("--n", help="Vectors searched at scale.", callback=_positive)
    ] = 1_000_000,
    real: Annotated[
        int, typer.Option(help="Real chunk vectors among them (the rest synthetic).")
    ] = 100_000,
    queries: Count = 1000,
    kinds: Annotated[str, typer.Option(help="Index kinds measured at scale.")] = "hnsw,ivfpq",
    shards: Annotated[int, typer.Option(help="Shards of the split search (0: none).")] = 4,
    ingest_chunks: Count = 768,
    ingest_files: Count = 40,
    facts: Count = 100,
    pages: Annotated[int, typer.Option(help="Pages the facts are planted in.")] = 200,
    corpus: Annotated[
        Path | None, typer.Option(help="A folder of documents instead of Debian's docs.")
    ] = None,
    json_out: JsonOpt = False,
    out_path: OutOpt = None,
) -> None:
    """Ingest, search at scale, grounding and sharded search, measured here."""
    from mixserve_bench.retrieval_eval import (
        debian_corpus,
        folder_corpus,
        grounding,
        ingest_speed,
        real_vectors,
        scale,
        summary,
    )
    from mixserve_bench.retrieval_eval.scale import plot

    wanted = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in ("flat", "hnsw", "ivfpq")]
    if unknown or not wanted:
        fail(f"--kinds takes flat, hnsw and ivfpq, not {kinds!r}")
    if not 0 <= shards <= 64 or real < 1:
        fail("--shards takes 0 to 64 and --real at least 1")
    cache = get_settings().cache_dir
    if corpus is not None:
        if not corpus.is_dir():
            fail(f"--corpus {corpus}: not a folder")
        docs = folder_corpus(corpus)
        if len(docs.pages) < 2 or len(docs.tune_pages) < 2:
            fail(f"--corpus {corpus}: fewer than 4 documents to read")
    else:
        docs = debian_corpus(cache, pages)
    err.print("[bold]ingest[/bold]: fp32 and int8 encoders, then an index build")
    ingested = ingest_speed(docs, cache, ingest_chunks, 3, ingest_files)
    err.print(f"[bold]search at scale[/bold]: {n:,} vectors, {min(real, n):,} of them real")
    vectors, chunks = real_vectors(min(real, n), docs, cache)
    scaled = scale(vectors, chunks, n, queries, wanted, shards, "shaped", cache)
    err.print(f"[bold]grounding[/bold]: {facts} planted facts")
    grounded = grounding(docs, cache, facts)
    result = summary(scaled, ingested, grounded)
    _table(result, scaled["chosen"]["meets_targets"])
    if out_path is not None:
        full: dict[str, Any] = {"summary": result, "ingest": ingested, "scale": scaled}
        _write(out_path, {**full, "grounding": grounded})
        plot(scaled["indexes"], out_path.with_suffix(".png"))
    if json_out:
        out.print(json.dumps(result), highlight=False, soft_wrap=True)


def _table(result: dict[str, Any], meets: bool) -> None:
    table = Table(title="retrieval" + ("" if meets else " (search target not met)"))
    table.add_column("")
    table.add_column("measured")
    for key, value in result.items():
        table.add_row(key, json.dumps(value))
    err.print(table)
