"""Exact-answer math through mixserve (``model: auto``, the CPU profile, whose math
specialist has the symbolic engine in front of Gemma 3 270M) against the real peer:
``vllm serve`` on the same weights with the math specialist's own prompt, that is the
math model alone. Questions alternate between the two, one at a time.

Five kinds of question with one exact number for an answer, made from a seed: multi-digit
products, sums, linear equations, one-step word problems and two-step word problems.
An answer is right when its last number is the expected one (the usual GSM8K rule;
``any`` in the report: when any number in it is). Besides accuracy per kind it reports,
for mixserve, where the router sent each question and which way the math specialist
answered it (symbolic, program_aided, unverified, refused), latencies on both sides,
adversarial inputs (time, status, refusal) and non-math questions (never to math).

Writes ``benchmarks/results/math_specialist.json`` and ``.png``.

    .venv/bin/python benchmarks/math_specialist.py --per-kind 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx

from orchestrator import profiles
from orchestrator.config import load_config

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "math_specialist.json"
KINDS = ("product", "sum", "linear", "word_one_step", "word_two_step")
EXPLICIT = KINDS[:3]
ADVERSARIAL = {
    "power tower": "9**9**9**9",
    "10,000 terms": " + ".join(str(i) for i in range(10_000)),
    "code": "__import__('os').system('touch /tmp/mixserve-bench-pwned')",
    "deep nesting": "(" * 500 + "1" + ")" * 500,
}
NOT_MATH = [
    "What is the capital of France?",
    "Who wrote the novel Pride and Prejudice?",
    "Why is the sky blue?",
    "Explain how vaccines train the immune system.",
    "Write a Python function that reverses a list.",
    "How do I read a CSV file with pandas?",
    "What does the git rebase command do?",
    "Summarize the causes of the First World War.",
]


def product(rng: random.Random) -> tuple[str, Fraction]:
    a, b = rng.randint(100, 9999), rng.randint(12, 9999)
    form = rng.choice(["What is {a} times {b}?", "What is {a} × {b}?", "Multiply {a} by {b}."])
    return form.format(a=a, b=b), Fraction(a * b)


def total(rng: random.Random) -> tuple[str, Fraction]:
    nums = [rng.randint(100, 99999) for _ in range(rng.randint(2, 4))]
    if rng.random() < 0.5:
        return f"What is {' + '.join(map(str, nums))}?", Fraction(sum(nums))
    listed = ", ".join(map(str, nums[:-1])) + f" and {nums[-1]}"
    return f"What is the sum of {listed}?", Fraction(sum(nums))


def linear(rng: random.Random) -> tuple[str, Fraction]:
    while True:
        k, x, m = rng.randint(2, 19), rng.randint(-40, 60), rng.randint(1, 300)
        j = rng.randint(1, k - 1) if k > 2 else 1
        forms = [
            (f"Solve for x: {k}x + {m} = {k * x + m}.", {k, m, k * x + m}),
            (f"Find x if {k}x - {m} = {k * x - m}.", {k, m, k * x - m}),
            (f"Solve {k}x + {m} = {j}x + {(k - j) * x + m}.", {k, m, j, (k - j) * x + m}),
        ]
        question, shown = rng.choice(forms)
        if x not in shown:  # the answer is not a number the question already shows
            return question, Fraction(x)


def word_one_step(rng: random.Random) -> tuple[str, Fraction]:
    a, b = rng.randint(3, 60), rng.randint(3, 40)
    forms = [
        (f"A box holds {a} pencils. How many pencils are in {b} boxes?", a * b),
        (f"A baker makes {a} loaves every day. How many loaves does he make in {b} days?", a * b),
        (f"Each ticket costs {a} dollars. How much do {b} tickets cost?", a * b),
        (
            f"{a * b} apples are shared equally among {b} children. "
            "How many apples does each child get?",
            a,
        ),
        (f"Sam has {a} marbles and wins {b} more. How many marbles does he have now?", a + b),
    ]
    question, answer = rng.choice(forms)
    return question, Fraction(answer)


def word_two_step(rng: random.Random) -> tuple[str, Fraction]:
    a, b, c = rng.randint(20, 90), rng.randint(2, 12), rng.randint(2, 15)
    forms = [
        (
            f"Maria has {a} stickers. She buys {b} packs of {c} stickers each. "
            "How many stickers does she have now?",
            a + b * c,
        ),
        (
            f"A shop had {a + b + c + 10} apples. It sold {b} apples in the morning and {c} "
            "in the afternoon. How many apples are left?",
            a + 10,
        ),
        (
            f"Tom earns {a + b} dollars a week and spends {a} dollars a week. "
            f"How much does he save in {c} weeks?",
            b * c,
        ),
        (
            f"A class has {b} rows of {c} desks, and {min(b * c - 1, 5)} desks are empty. "
            "How many desks are taken?",
            b * c - min(b * c - 1, 5),
        ),
    ]
    question, answer = rng.choice(forms)
    return question, Fraction(answer)


MAKERS: dict[str, Callable[[random.Random], tuple[str, Fraction]]] = {
    "product": product,
    "sum": total,
    "linear": linear,
    "word_one_step": word_one_step,
    "word_two_step": word_two_step,
}
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def numbers(text: str) -> list[Fraction]:
    found = []
    for token in NUMBER.findall(text):
        token = token.replace(",", "")
        if re.fullmatch(r"-?\d+(?:\.\d+)?(?:/\d+)?", token):
            found.append(Fraction(token))
    return found


def judge(text: str, expected: Fraction) -> dict[str, bool]:
    found = numbers(text)
    return {"last": bool(found) and found[-1] == expected, "any": expected in found}


def questions(per_kind: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(per_kind):
        for kind in KINDS:
            question, answer = MAKERS[kind](rng)
            out.append({"kind": kind, "question": question, "expected": answer, "i": i})
    return out


def ask(client: httpx.Client, model: str, question: str, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    started = time.perf_counter()
    resp = client.post("/v1/chat/completions", json=body)
    elapsed = time.perf_counter() - started
    out: dict[str, Any] = {"status": resp.status_code, "latency_s": round(elapsed, 4)}
    try:
        data = resp.json()
    except ValueError:
        return {**out, "text": resp.text[:200]}
    if resp.status_code != 200:
        return {**out, "text": json.dumps(data)[:300]}
    out["text"] = data["choices"][0]["message"]["content"]
    mix = data.get("mixserve") or {}
    if mix:
        out["specialist"] = data["model"]
        out["method"] = mix["policy"].get("method", "")
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        entry: dict[str, Any] = {"n": len(mine)}
        for side in ("mixserve", "peer"):
            answers = [r[side] for r in mine]
            entry[side] = {
                "correct_last": sum(a["correct"]["last"] for a in answers) / len(mine),
                "correct_any": sum(a["correct"]["any"] for a in answers) / len(mine),
                "p50_latency_s": statistics.median(a["latency_s"] for a in answers),
                "errors": sum(a["status"] != 200 for a in answers),
            }
        mix = [r["mixserve"] for r in mine]
        entry["mixserve"]["routed"] = dict(Counter(a.get("specialist", "?") for a in mix))
        entry["mixserve"]["method"] = dict(Counter(a.get("method") or "none" for a in mix))
        by_method: dict[str, list[bool]] = defaultdict(list)
        for a in mix:
            by_method[a.get("method") or "none"].append(a["correct"]["last"])
        entry["mixserve"]["correct_by_method"] = {
            m: round(sum(v) / len(v), 3) for m, v in by_method.items()
        }
        by_kind[kind] = entry
    explicit = [r for r in rows if r["kind"] in EXPLICIT]
    return {
        "by_kind": by_kind,
        "explicit_correct_mixserve": sum(r["mixserve"]["correct"]["last"] for r in explicit)
        / len(explicit),
        "explicit_correct_peer": sum(r["peer"]["correct"]["last"] for r in explicit)
        / len(explicit),
    }


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(summary["by_kind"])
    x = range(len(kinds))
    fig, ax = plt.subplots(figsize=(8, 4))
    mix = [summary["by_kind"][k]["mixserve"]["correct_last"] for k in kinds]
    peer = [summary["by_kind"][k]["peer"]["correct_last"] for k in kinds]
    ax.bar([i - 0.2 for i in x], mix, 0.4, label="mixserve (auto; symbolic engine + 270M)")
    ax.bar([i + 0.2 for i in x], peer, 0.4, label="vllm serve (same 270M, math prompt)")
    ax.set_xticks(list(x), [k.replace("_", " ") for k in kinds])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share correct (last number)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Exact-answer math questions, CPU profile")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=20, help="Questions of each kind.")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--config", type=Path, default=profiles.FOLDER / "cpu.yaml")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.per_kind < 1:
        sys.exit("--per-kind must be at least 1")

    from rich.progress import Progress

    from loadgen.peer import vllm_server
    from mixserve_bench.cli.peer import peer_template
    from orchestrator.app import OFFLINE_ENV
    from orchestrator.deployments import all_cpus
    from orchestrator.runtime import ServiceRun, free_port
    from orchestrator.settings import get_settings

    cfg = load_config(args.config)
    cfg = cfg.model_copy(
        update={
            "cache": cfg.cache.model_copy(update={"enabled": False}),
            "auth": cfg.auth.model_copy(update={"enabled": False}),
        }
    )
    spec = cfg.specialist("math")
    asked = questions(args.per_kind, args.seed)
    with tempfile.TemporaryDirectory(prefix="mixserve-math-") as tmp:
        template = Path(tmp) / "template.jinja"
        template.write_text(peer_template(cfg, spec))
        settings = dataclasses.replace(
            get_settings(), redis_url=None, ray_address=None, state_dir=Path(tmp) / "state"
        )
        run = ServiceRun(cfg, settings, port=free_port(), state_file=settings.state_file)
        binding = {"VLLM_CPU_OMP_THREADS_BIND": all_cpus()} if spec.cpu_binding == "all" else {}
        with Progress() as bars:
            task = bars.add_task("starting mixserve", total=None)
            run.start(step=lambda s: bars.update(task, description=f"mixserve: {s}"))
        try:
            with vllm_server(
                spec.model.location(get_settings().cache_dir),
                name="math",
                port=free_port(),
                max_model_len=spec.max_model_len,
                engine_kwargs={**spec.engine_kwargs, "chat_template": str(template)},
                env={**OFFLINE_ENV, **spec.engine_env, **binding},
                log_path=Path(tmp) / "vllm-serve.log",
            ) as peer_url:
                rows = measure(run.url, peer_url, asked, args.max_tokens, Progress)
                extra = probes(run.url)
        finally:
            run.stop()
    summary = summarize(rows)
    report = {
        "config": str(args.config),
        "per_kind": args.per_kind,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "summary": summary,
        **extra,
        "rows": [{**r, "expected": str(r["expected"])} for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(summary, args.out.with_suffix(".png"))
    print(json.dumps({"summary": summary, **extra}, indent=2))


def measure(
    url: str, peer_url: str, asked: list[dict[str, Any]], max_tokens: int, progress: Any
) -> list[dict[str, Any]]:
    rows = []
    stop = ["\nQuestion:"]  # what mixserve adds for gemma_base, given to the peer too
    with (
        httpx.Client(base_url=url, timeout=120) as mix,
        httpx.Client(base_url=peer_url, timeout=120) as peer,
        progress() as bars,
    ):
        task = bars.add_task("questions (mixserve and the peer, alternating)", total=len(asked))
        for n, q in enumerate(asked):
            row = dict(q)
            order = ("mixserve", "peer") if n % 2 == 0 else ("peer", "mixserve")
            for side in order:
                if side == "mixserve":
                    answer = ask(mix, "auto", q["question"], max_tokens)
                else:
                    answer = ask_peer(peer, q["question"], max_tokens, stop)
                answer["correct"] = judge(answer.get("text", ""), q["expected"])
                row[side] = answer
            rows.append(row)
            bars.advance(task)
    return rows


def ask_peer(client: httpx.Client, question: str, max_tokens: int, stop: list[str]) -> Any:
    body = {
        "model": "math",
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stop": stop,
    }
    started = time.perf_counter()
    resp = client.post("/v1/chat/completions", json=body)
    out: dict[str, Any] = {
        "status": resp.status_code,
        "latency_s": round(time.perf_counter() - started, 4),
    }
    out["text"] = resp.json()["choices"][0]["message"]["content"] if resp.is_success else ""
    return out


def probes(url: str) -> dict[str, Any]:
    """Adversarial input (to ``auto`` and pinned to math) and non-math questions."""
    adversarial = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for name, text in ADVERSARIAL.items():
            for model in ("auto", "math"):
                answer = ask(client, model, text, 64)
                answer["text"] = answer.get("text", "")[:160]
                adversarial[f"{name} ({model})"] = answer
        routed = {q: ask(client, "auto", q, 16).get("specialist") for q in NOT_MATH}
    return {
        "adversarial": adversarial,
        "pwned": Path("/tmp/mixserve-bench-pwned").exists(),
        "not_math_routed": routed,
        "not_math_to_math": sum(v == "math" for v in routed.values()),
    }


if __name__ == "__main__":
    main()
