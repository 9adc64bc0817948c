"""Ray Serve's own floor beside mixserve's ceiling, in one run: what a request costs when
the service does nothing but pass it through the same hops.

Inside the Ray that ``mixserve bench ceiling`` starts (the cpu profile, every engine on
the fake at 0.5 ms a token, Serve in its high-throughput mode with HAProxy in front),
this deploys three applications of its own with no work in them:

- ``floor-h0``: an ingress (FastAPI under ``serve.ingress``, as the gateway is) that
  streams the answer itself;
- ``floor-h1``: the ingress streaming from a second deployment, which yields the answer's
  tokens as the fake does (0.5 ms each, sent on the same 20 ms stream batching);
- ``floor-h2``: the same with one unary call to a third deployment first: a pinned
  request's shape (gateway -> retriever, then gateway -> engine, streamed).

Rounds of closed-loop streaming clients (24, as many as mixserve's gateway admits)
alternate between mixserve pinned and the three floors; each process's CPU time is read
from /proc around each round. The floor is the most any service built on these hops could
carry on these cores, whatever it did.

``--variants`` picks the floors; ``floor_h2_no_access_log`` (not run by default) is
``floor_h2`` with Serve's per-request access log off in all three deployments.

    .venv/bin/python benchmarks/serve_floor.py --rounds 2 --duration 20
    .venv/bin/python benchmarks/serve_floor.py --variants floor_h2 floor_h2_no_access_log \
        --rounds 3 --duration 15 --out benchmarks/results/serve_floor_access_log.json

Writes ``benchmarks/results/serve_floor.json`` and ``serve_floor.png`` (CPU per request by
part, each variant's median round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from ray import serve

from loadgen import LoadSpec, QueryMix, alternate, run_load, summarize
from loadgen.compare import median
from loadgen.cpu import CpuMeter, component
from loadgen.cpu import snapshot as cpu_snapshot
from mixserve_bench.cli.ceiling import fake_fleet
from mixserve_bench.cli.load import BUILTIN_MIX, machine
from mixserve_bench.cli.suites import _service
from orchestrator import profiles
from orchestrator.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TOKEN_DELAY_S = 0.0005
ANSWER_TOKENS = 64
BATCH_S = 0.020  # the engines' default stream_batch_ms
CLIENTS = 24
# name -> (hops, Serve's per-request access log on)
FLOORS = {
    "floor_h0": (0, True),
    "floor_h1": (1, True),
    "floor_h2": (2, True),
    "floor_h2_no_access_log": (2, False),
}

floor_api = FastAPI()
# the service holds the cores Ray counts; the floors take none, as mixserve's fronts
NO_CPU = {"num_cpus": 0}


@serve.deployment(name="floor-unary", max_ongoing_requests=64, ray_actor_options=NO_CPU)
class Unary:
    async def __call__(self, text: str) -> list[str]:
        return [text]


async def paced(tokens: int) -> Any:
    """The fake engine's pace and the stream batching's chunks: the first token at once,
    then whatever came within 20 ms of the last send, as one chunk."""
    sent, pending = time.monotonic(), ""
    for i in range(tokens):
        await asyncio.sleep(TOKEN_DELAY_S)
        pending += " tok"
        if i == 0 or time.monotonic() - sent >= BATCH_S:
            yield pending
            sent, pending = time.monotonic(), ""
    if pending:
        yield pending


@serve.deployment(name="floor-stream", max_ongoing_requests=64, ray_actor_options=NO_CPU)
class Stream:
    async def __call__(self, tokens: int) -> Any:
        async for piece in paced(tokens):
            yield piece


def _chunk(text: str, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {
        "id": "floor", "object": "chat.completion.chunk", "model": "floor",
        "choices": [] if usage else [{"index": 0, "delta": {"content": text}}],
    }  # fmt: skip
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@serve.deployment(name="floor-ingress", max_ongoing_requests=64, ray_actor_options=NO_CPU)
@serve.ingress(floor_api)
class Ingress:
    def __init__(self, hops: int, stream: Any = None, unary: Any = None) -> None:
        self.hops, self.stream, self.unary = hops, stream, unary

    @floor_api.post("/v1/chat/completions")
    async def chat(self, request: Request) -> StreamingResponse:
        body = await request.json()
        tokens = int(body.get("max_tokens") or ANSWER_TOKENS)
        text = body["messages"][-1]["content"]
        if self.hops >= 2:
            await self.unary.remote(text)

        async def events() -> Any:
            # the answer's chunks from the stream deployment, or paced here (no hop)
            if self.hops >= 1:
                pieces = self.stream.options(stream=True).remote(tokens)
            else:
                pieces = paced(tokens)
            async for piece in pieces:
                yield _chunk(piece)
            usage = {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}
            yield _chunk("", usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def floor_app(hops: int, access_log: bool = True) -> Any:
    opts = {} if access_log else {"logging_config": {"enable_access_log": False}}
    ingress = cast(Any, Ingress).options(**opts)
    stream, unary = cast(Any, Stream).options(**opts), cast(Any, Unary).options(**opts)
    if hops == 0:
        return ingress.bind(0)
    return ingress.bind(hops, stream.bind(), unary.bind() if hops >= 2 else None)


def part_of(cmdline: str, own: bool) -> str | None:
    """A floor replica by its deployment (``floor-ingress``...); anything else as
    ``loadgen.cpu.component`` names it."""
    head = cmdline.split("\0")[0]
    deployment = head.rsplit(":", 1)[-1] if head.startswith("ray::ServeReplica:") else ""
    return deployment if deployment.startswith("floor-") else component(cmdline, own)


def snapshot() -> dict[int, tuple[str, float]]:
    """Like ``loadgen.cpu.snapshot``, with each floor deployment named apart."""
    return cpu_snapshot(name_of=part_of)


def measure(url: str, model: str, duration: float, mix: QueryMix) -> Any:
    spec = LoadSpec(
        url=url, clients=CLIENTS, duration_s=duration, model=model, max_tokens=ANSWER_TOKENS,
        timeout_s=60.0,
    )  # fmt: skip

    async def one() -> dict[str, Any]:
        meter = CpuMeter(take=snapshot)
        meter.start()
        outcomes = await run_load(spec, mix)
        seconds = meter.stop()
        answered = [o for o in outcomes if o.answered]
        if not answered:
            raise RuntimeError(f"{url}: no request answered: {summarize(outcomes, 10.0)}")
        n = len(answered)
        service = sum(v for k, v in seconds.items() if k != "loadgen")
        return {
            "requests_per_s": round(n / duration, 2),
            "answered": n,
            "not_answered": len(outcomes) - n,
            "service_cpu_ms_per_request": round(service * 1000 / n, 3),
            "cpu_ms_per_request": {k: round(v * 1000 / n, 3) for k, v in sorted(seconds.items())},
            "latency_p50_ms": round(1000 * median([o.latency_s for o in answered]), 1),
        }

    return one


# each part of mixserve beside the floor deployment that stands for it
PARTS = {
    "ingress (gateway)": ("gateway", "floor-ingress"),
    "unary callee (retriever, router)": ("retriever", "router", "floor-unary"),
    "stream callee (engine replica)": ("engine_replica", "floor-stream"),
    "proxy (HAProxy)": ("proxy",),
    "Ray and Serve's controller": ("ray", "serve_controller"),
    "Redis": ("redis",),
}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["rounds"])
    fig, ax = plt.subplots(figsize=(9, 4))
    bottom = [0.0] * len(names)
    for label, keys in PARTS.items():
        heights = []
        for name in names:
            rounds = report["rounds"][name]
            heights.append(
                median([sum(r["cpu_ms_per_request"].get(k, 0.0) for k in keys) for r in rounds])
            )
        ax.bar(names, heights, bottom=bottom, label=label)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i, name in enumerate(names):
        rps = report["summary"][name]["requests_per_s"]
        ax.text(i, bottom[i], f"{rps:g} req/s", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("service CPU ms per request")
    ax.set_title("mixserve pinned beside Ray Serve's floor for the same hops (2 cores)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_floor.json")
    ap.add_argument(
        "--variants", nargs="+", choices=list(FLOORS), default=["floor_h0", "floor_h1", "floor_h2"]
    )
    args = ap.parse_args()
    if args.rounds < 1 or args.duration <= 0:
        raise SystemExit("serve_floor: --rounds must be >= 1 and --duration > 0")
    mix = QueryMix(BUILTIN_MIX)
    cfg = fake_fleet(load_config(profiles.FOLDER / "cpu.yaml"), TOKEN_DELAY_S, ANSWER_TOKENS, None)
    with (
        tempfile.TemporaryDirectory(prefix="serve-floor-") as tmp,
        _service(cfg, Path(tmp) / "s") as run,
    ):
        urls = {"mixserve_pinned": (run.url, cfg.specialists[0].name)}
        for name in args.variants:
            app = name.replace("_", "-")
            serve.run(floor_app(*FLOORS[name]), name=app, route_prefix="/" + app)
            urls[name] = (f"{run.url}/{app}", "floor")
        for url, model in urls.values():  # warm-up: connections, first calls, the router
            asyncio.run(measure(url, model, 3.0, mix)())
        variants = {
            name: measure(url, model, args.duration, mix) for name, (url, model) in urls.items()
        }
        results = asyncio.run(alternate(variants, args.rounds))
    summary = {
        name: {
            "requests_per_s": median([r["requests_per_s"] for r in rs]),
            "service_cpu_ms_per_request": median([r["service_cpu_ms_per_request"] for r in rs]),
            "capacity_rps_per_2_cores": round(
                2000 / median([r["service_cpu_ms_per_request"] for r in rs]), 1
            ),
        }
        for name, rs in results.items()
    }
    report = {"summary": summary, "rounds": results, "machine": machine(),
              "settings": {"clients": CLIENTS, "token_delay_ms": TOKEN_DELAY_S * 1000,
                           "answer_tokens": ANSWER_TOKENS, "duration_s": args.duration,
                           "rounds": args.rounds}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(report, indent=1) + "\n")
    tmp_out.replace(args.out)
    plot(report, args.out.with_suffix(".png"))
    print(json.dumps({"summary": summary, "machine": report["machine"]}))


if __name__ == "__main__":
    main()
