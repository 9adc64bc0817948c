"""``mixserve index build|add|delete|stats|search``: retrieval collections on disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeRemainingColumn
from rich.table import Table

from orchestrator.cli.common import DEFAULT_CONFIG, ConfigOpt, err, fail, load_checked, out
from orchestrator.config import MixserveConfig
from orchestrator.settings import get_settings

if TYPE_CHECKING:
    from retrieval import BuildReport, CollectionStore, Embedder, IngestOptions

index_app = typer.Typer(
    help="Build, change and search retrieval collections.", no_args_is_help=True
)

CollectionOpt = Annotated[str, typer.Option("--collection", help="Collection name.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where collections live (default: MIXSERVE_DATA_DIR, the config's "
        "retrieval.data_dir, or <cache dir>/data).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PathsArg = Annotated[list[Path], typer.Argument(help="Files or folders to read.", metavar="PATH")]
RootOpt = Annotated[
    Path | None,
    typer.Option(help="Sources are named relative to this folder (default: the current one)."),
]
ChunkOpt = Annotated[int | None, typer.Option(help="Most characters per chunk.")]
OverlapOpt = Annotated[int | None, typer.Option(help="Characters shared by adjacent chunks.")]
KindOpt = Annotated[
    str | None, typer.Option("--index", help="auto, flat, hnsw or ivfpq (default: auto).")
]
RecallOpt = Annotated[
    float | None, typer.Option(help="Recall@10 the search parameter is tuned to.")
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        help="Embed on this many Ray actors spread over the cluster's nodes (RAY_ADDRESS, "
        "else a local Ray started for the build); 0: in this process.",
    ),
]
MAX_QUERY_CHARS = 4000
MAX_WORKERS = 256


def _ingest_command(mode: str, summary: str) -> Any:
    """The ``build`` and ``add`` commands: the same options, another mode."""

    def command(
        paths: PathsArg,
        collection: CollectionOpt,
        config: ConfigOpt = DEFAULT_CONFIG,
        data_dir: DataDirOpt = None,
        root: RootOpt = None,
        chunk_chars: ChunkOpt = None,
        chunk_overlap: OverlapOpt = None,
        index: KindOpt = None,
        target_recall: RecallOpt = None,
        workers: WorkersOpt = 0,
        as_json: JsonOpt = False,
    ) -> None:
        _ingest(mode, paths, collection, config, data_dir, root, chunk_chars, chunk_overlap,
                index, target_recall, workers, as_json)  # fmt: skip

    command.__doc__ = summary
    return command


index_app.command("build")(
    _ingest_command(
        "build",
        "Make the collection exactly these files (a new version; unchanged files keep "
        "their vectors).",
    )
)
index_app.command("add")(
    _ingest_command("add", "Add files to the collection, or replace the chunks of files it holds.")
)


@index_app.command("delete")
def delete(
    sources: Annotated[list[str], typer.Argument(help="Sources, as `index stats` lists them.")],
    collection: CollectionOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove sources from the collection (a new version)."""
    from retrieval import CollectionError
    from retrieval import delete as delete_sources

    cfg, store, embedder = _open(config, data_dir, collection)
    _load(embedder)
    try:
        with _bars() as bars:
            report = delete_sources(
                store, embedder, sources, _options(cfg, collection, store), _ticker(bars)
            )
    except (CollectionError, ValueError) as exc:
        fail(str(exc))
    _print_report(report, as_json)


@index_app.command("stats")
def stats(
    collection: Annotated[
        str | None, typer.Option("--collection", help="One collection (default: all).")
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What each collection holds: version, chunks, sources, index, embedding model."""
    from retrieval import CollectionError, CollectionStore, list_collections

    cfg = load_checked(config)
    folder = _data_dir(cfg, data_dir)
    names = [collection] if collection else list_collections(folder)
    rows = []
    for name in names:
        try:
            version = CollectionStore(folder, name).open_version(verify=False)
        except CollectionError as exc:
            fail(str(exc))
        m = version.manifest
        rows.append(
            {
                "collection": name,
                "version": version.name,
                "versions": CollectionStore(folder, name).version_names(),
                "chunks": m["counts"]["chunks"],
                "sources": m["counts"]["sources"],
                "index": m["index"],
                "embedding": m["embedding"],
                "chunking": m["chunking"],
                "created": m["created"],
                "bytes": sum(f["bytes"] for f in m["files"].values()),
                **({"source_list": sorted(m["sources"])} if collection else {}),
            }
        )
    if as_json:
        out.print_json(json.dumps(rows if not collection else rows[0]))
        return
    if not rows:
        out.print(f"no collections under {folder}", highlight=False)
        return
    table = Table("collection", "version", "chunks", "sources", "index", "recall@10", "MB")
    for r in rows:
        idx = r["index"]
        params = ",".join(f"{k}={v}" for k, v in idx["params"].items())
        table.add_row(
            r["collection"], r["version"], str(r["chunks"]), str(r["sources"]),
            f"{idx['factory']} {params}".strip(), f"{idx['recall_at_10']:.3f}",
            f"{r['bytes'] / 1e6:.1f}",
        )  # fmt: skip
    out.print(table)


@index_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="The question or text to look for.")],
    collection: CollectionOpt,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100, help="Hits (1-100).")] = 5,
    config: ConfigOpt = DEFAULT_CONFIG,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The collection's best chunks for QUERY."""
    from retrieval import CollectionError, LiveCollection

    if not query.strip():
        fail("the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        fail(f"the query is {len(query)} characters; at most {MAX_QUERY_CHARS}")
    cfg, store, embedder = _open(config, data_dir, collection)
    _load(embedder)
    texts = [query] if cfg.retrieval.search == "hybrid" else None
    try:
        live = LiveCollection(store, embedder.identity())
        hits = live.search(embedder.embed([query]), top_k, texts)
    except CollectionError as exc:
        fail(str(exc))
    found = [
        {"source": h.source, "offset": h.offset, "score": round(h.score, 4), "text": h.text}
        for h in hits[0]
    ]
    if as_json:
        out.print(json.dumps(found, ensure_ascii=False), highlight=False, soft_wrap=True)
        return
    for hit in found:
        out.print(
            f"[bold]{hit['score']:.3f}[/bold] {hit['source']}:{hit['offset']}", highlight=False
        )
        out.print("  " + str(hit["text"])[:300].replace("\n", " "), highlight=False)


def _ingest(
    mode: str,
    paths: list[Path],
    collection: str,
    config: str,
    data_dir: Path | None,
    root: Path | None,
    chunk_chars: int | None,
    chunk_overlap: int | None,
    kind: str | None,
    target_recall: float | None,
    workers: int,
    as_json: bool,
) -> None:
    from retrieval import CollectionError, ingest

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}", 2)
    if kind not in (None, "auto", "flat", "hnsw", "ivfpq"):
        fail(f"--index {kind!r} is not one of auto, flat, hnsw, ivfpq", 2)
    if not 0 <= workers <= MAX_WORKERS:
        fail(f"--workers takes 0 to {MAX_WORKERS}, not {workers}", 2)
    cfg, store, embedder = _open(config, data_dir, collection, workers)
    try:
        options = _options(cfg, collection, store, chunk_chars, chunk_overlap, kind, target_recall)
    except ValueError as exc:
        fail(str(exc), 2)
    with _ray(workers):
        _load(embedder)
        try:
            with _bars() as bars:
                report = ingest(
                    store, embedder, paths, root or Path.cwd(), mode, options,  # type: ignore[arg-type]
                    _ticker(bars),
                )  # fmt: skip
        except (CollectionError, ValueError) as exc:
            fail(str(exc))
        if workers:
            report.workers = embedder.stats()
    _print_report(report, as_json)


@contextmanager
def _ray(workers: int) -> Iterator[None]:
    """Connected to Ray for the build's embedding workers (none: nothing to do)."""
    if not workers:
        yield
        return
    import ray

    address = get_settings().ray_address
    with err.status(f"connecting to Ray ({address or 'a local Ray, started now'})"):
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            fail(f"cannot reach Ray at {address}: {exc}")
    try:
        yield
    finally:
        ray.shutdown()


def _open(
    config: str, data_dir: Path | None, collection: str, workers: int = 0
) -> tuple[Any, Any, Any]:
    from orchestrator.retrieval_setup import make_embedder
    from retrieval import CollectionError, CollectionStore

    cfg = load_checked(config)
    try:
        store = CollectionStore(_data_dir(cfg, data_dir), collection)
    except CollectionError as exc:
        fail(str(exc), 2)
    embedder = make_embedder(cfg.retrieval.embedding, get_settings().cache_dir, workers)
    return cfg, store, embedder


def _load(embedder: Embedder) -> None:
    with err.status(f"loading {embedder.package} ({embedder.precision})"):
        try:
            embedder.load()
        except (RuntimeError, OSError) as exc:
            fail(str(exc))


def _data_dir(cfg: MixserveConfig, data_dir: Path | None) -> Path:
    settings = get_settings()
    return data_dir or cfg.data_dir(settings.data_dir, settings.cache_dir)


def _options(
    cfg: MixserveConfig,
    collection: str,
    store: CollectionStore,
    chunk_chars: int | None = None,
    chunk_overlap: int | None = None,
    kind: str | None = None,
    target_recall: float | None = None,
) -> IngestOptions:
    """Flags, else the configured collection's settings, else the live version's, else
    the defaults."""
    from dataclasses import replace

    from orchestrator.retrieval_setup import ingest_options
    from retrieval import CollectionError

    named = {c.name: c for c in cfg.retrieval.collections}
    base = ingest_options(named.get(collection))
    if collection not in named and store.exists():
        try:
            m = store.open_version(verify=False).manifest
            base = replace(
                base,
                chunk_chars=m["chunking"]["chars"],
                chunk_overlap=m["chunking"]["overlap"],
                target_recall=m["index"]["target_recall"],
            )
        except (CollectionError, KeyError):
            pass
    given: dict[str, Any] = {
        "chunk_chars": chunk_chars,
        "chunk_overlap": chunk_overlap,
        "index": kind,
        "target_recall": target_recall,
    }
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def _bars() -> Progress:
    return Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=False,
    )  # fmt: skip


def _ticker(bars: Progress) -> Any:
    tasks: dict[str, TaskID] = {}
    labels = {"read": "reading files", "embed": "embedding chunks", "index": "indexing",
              "write": "writing version"}  # fmt: skip

    def tick(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(labels.get(stage, stage), total=total)
        bars.update(tasks[stage], completed=done, total=total)

    return tick


def _print_report(report: BuildReport, as_json: bool) -> None:
    data = report.as_dict()
    if as_json:
        out.print(json.dumps(data), highlight=False, soft_wrap=True)
        return
    idx = data["index"]
    line = (
        f"{report.collection}: version {report.version}, {report.chunks} chunks from "
        f"{report.sources} sources ({report.embedded} embedded now)"
    )
    if idx:
        params = ", ".join(f"{k} {v}" for k, v in idx["params"].items())
        line += f"; index {idx['factory']}{f' ({params})' if params else ''}"
        line += f", recall@10 {idx['recall_at_10']:.3f}"
    out.print(line, highlight=False, soft_wrap=True)
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in data["seconds"].items())
    if secs:
        out.print(f"time: {secs}", highlight=False)
    for w in data.get("workers", []):
        out.print(f"worker on node {w['node'][:12]}: {w['texts']} chunks", highlight=False)
    if report.from_scratch:
        out.print(f"built from scratch: {report.from_scratch}", highlight=False, soft_wrap=True)
    if report.removed_sources:
        out.print(f"removed: {', '.join(report.removed_sources)}", highlight=False, soft_wrap=True)
    if report.skipped:
        out.print(f"skipped {len(report.skipped)} file(s):", highlight=False)
        for path, why in report.skipped:
            out.print(f"  {path}: {why}", highlight=False, soft_wrap=True)
