"""Does fine-tuning the router LLM's first layers add per-query signal? (RouterDC tables)

The design the router issue suggests: a head learned on top of a task prior, overriding it
only where the query says so. Here the prior is the kNN head (neighbours' scores shrunk to
their tables' priors, out-of-fold on the training rows) as a fixed offset in the logits;
the first ``--layers`` layers of the router LLM plus a zero-initialised LayerNorm-linear
head learn the residual with RouterDC's soft-label objective (cross-entropy against the
share of credit each model earned, on rows where the models differ). It starts exactly at
the kNN router and moves only if the gradient finds per-query signal.

Split (stratified by table, seed 0): train folds 2-4, early stopping on fold 1, report
fold 0 at the best fold-1 step, beside the task prior and the kNN offset on fold 0.
Writes ``benchmarks/results/router_finetune.json``.

    .venv/bin/python benchmarks/router_finetune.py --layers 3 --epochs 3 --tau 1.0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orchestrator import profiles
from orchestrator.config import load_config
from orchestrator.settings import get_settings
from router_model.backbone import HiddenStateEmbedder
from router_model.embed_cache import cached_embeddings
from router_model.heads import KnnHead
from router_model.scores import read_score_tables
from router_model.train import out_of_fold, stack_tables, stratified_folds

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def accuracy(scores: np.ndarray, earned: np.ndarray, groups: np.ndarray) -> float:
    got = earned[np.arange(len(earned)), scores.argmax(1)]
    return float(np.mean([got[groups == g].mean() for g in np.unique(groups)]))


def pooled(decoder: Any, ids: list[list[int]], pad: int) -> torch.Tensor:
    width = max(len(r) for r in ids)
    input_ids = torch.full((len(ids), width), pad)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        states = decoder(input_ids=input_ids, attention_mask=mask, use_cache=False)
    weights = mask.float()
    weights[:, 0] = 0.0  # <bos>, as the served router pools
    weights = weights.unsqueeze(-1)
    return (states.last_hidden_state.float() * weights).sum(1) / weights.sum(1).clamp(min=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-5, help="Learning rate of the LM layers.")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--tau", type=float, default=1.0, help="Offset = log(kNN score) / tau.")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=30, help="Steps between evaluations.")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/router_finetune.json"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"routing data not found at {DATA}: this benchmark needs ../shared/data")
    torch.manual_seed(0)
    torch.set_num_threads(2)
    config = load_config(profiles.FOLDER / "cpu.yaml")
    tables = read_score_tables(sorted((DATA / "routerdc").glob("*_train.jsonl")))
    earned, groups = stack_tables(tables)
    queries = [q for t in tables for q in t.queries]
    lm = HiddenStateEmbedder(
        config.router.model.location(get_settings().cache_dir),
        args.layers,
        args.max_tokens,
        dtype="float32",
    )
    lm.load()
    cache = get_settings().cache_dir / "router-embeddings"
    x = cached_embeddings(lm.embed, lm.spec.fingerprint(), queries, cache)
    fold = stratified_folds(groups, 5, 0)
    test, val, train = (
        np.flatnonzero(fold == 0),
        np.flatnonzero(fold == 1),
        np.flatnonzero(fold >= 2),
    )

    def make() -> KnnHead:
        return KnnHead(k=25, prior_weight=30)

    offset = np.zeros_like(earned)
    offset[train] = out_of_fold(make, x[train], earned[train], groups[train], 5, 0)
    knn = make()
    knn.fit_scores(x[train], earned[train], groups[train])
    offset[np.r_[val, test]] = knn.predict(x[np.r_[val, test]])
    table_best = np.stack([earned[train][groups[train] == g].mean(0) for g in range(len(tables))])
    prior = table_best[groups]
    results: dict[str, Any] = {
        "settings": vars(args) | {"out": str(args.out)},
        "test_rows": len(test),
        "task_prior_test": accuracy(prior[test], earned[test], groups[test]),
        "knn_test": accuracy(offset[test], earned[test], groups[test]),
        "knn_val": accuracy(offset[val], earned[val], groups[val]),
        "curve": [],
    }
    print(f"fold 0: task prior {results['task_prior_test']:.4f} kNN {results['knn_test']:.4f}")

    decoder = lm.decoder
    decoder.train()
    decoder.embed_tokens.weight.requires_grad_(False)
    head = torch.nn.Sequential(
        torch.nn.LayerNorm(x.shape[1]), torch.nn.Linear(x.shape[1], earned.shape[1])
    )
    torch.nn.init.zeros_(head[1].weight)
    torch.nn.init.zeros_(head[1].bias)
    trainable = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": trainable, "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}],
        weight_decay=0.01,
    )
    ids = lm.token_ids(queries)
    pad = 0
    logits_offset = torch.tensor(np.log(np.clip(offset, 1e-3, 1.0)) / args.tau, dtype=torch.float32)
    target = torch.tensor(
        earned / np.clip(earned.sum(1, keepdims=True), 1e-9, None), dtype=torch.float32
    )
    informative = train[earned[train].max(1) > earned[train].min(1)]

    def predict(rows: np.ndarray) -> np.ndarray:
        decoder.eval()
        out = np.zeros_like(earned)
        with torch.no_grad():
            order = rows[np.argsort([len(ids[i]) for i in rows])]
            for start in range(0, len(order), 64):
                idx = order[start : start + 64]
                batch = head(pooled(decoder, [ids[i] for i in idx], pad))
                out[idx] = (logits_offset[idx] + batch).numpy()
        decoder.train()
        return out

    rng = np.random.default_rng(0)
    started, step, best = time.monotonic(), 0, None
    for epoch in range(args.epochs):
        order = rng.permutation(informative)
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            logits = logits_offset[idx] + head(pooled(decoder, [ids[i] for i in idx], pad))
            loss = -(target[idx] * torch.log_softmax(logits, 1)).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % args.eval_every and start + 32 < len(order):
                continue
            scores = predict(np.r_[val, test])
            point = {
                "epoch": epoch,
                "step": step,
                "loss": loss.item(),
                "val": accuracy(scores[val], earned[val], groups[val]),
                "test": accuracy(scores[test], earned[test], groups[test]),
                "seconds": round(time.monotonic() - started, 1),
            }
            results["curve"].append(point)
            if best is None or point["val"] > best["val"]:
                best = point
            print(json.dumps(point), flush=True)
    results["best_by_val"] = best
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"best by fold 1: {best}; wrote {args.out}")


if __name__ == "__main__":
    main()
