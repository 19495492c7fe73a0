"""Do the key-value tasks measure binding, or a shortcut? Per-query accuracy of trained kv_recall / kv_offset trials.

A kv text asks `kv_pairs` distinct keys, each followed by its value. A model that binds keys to values is about as
accurate on the first query as on the last. A model that only knows which values the context holds (its "bag"), and
skips those it has already answered, is right with probability 1/(P - i) at query i (P pairs): 1/16 on the first
query of the tiny config, 1 on the last, 0.21 on average, without reading a single key. This trains the tiny config
on each task and seed (with `--set` overrides), then scores, in compressed and full-context mode on held-out batches:
accuracy on the first and last quarter of the queries, the share of predictions that are a value of the context
(bag) and of those not yet answered in the text, beside the same numbers for the bag-and-eliminate guesser.

    python benchmarks/shortcut.py [--tasks kv_recall kv_offset] [--seeds 0 1 2] [--set key=value ...]
        [--threads 1] [--workers 2] [--name kv_shortcut]
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from _common import report
from measurability import tiny_config

PROBE_SEED, PROBE_BATCHES, PROBE_ROWS = 2**31 - 1, 8, 64  # a stream no trial trains or validates on


def query_profile(context: np.ndarray, text: np.ndarray, pred: np.ndarray, pairs: int) -> dict[str, np.ndarray]:
    """Per query index i (B rows, P queries): right (pred == value), in_bag (pred is a value of the context's pairs),
    fresh (in the bag and not yet answered in this text). Text is key, value, key, value, ...; pred[:, t] predicts
    text[:, t]; the pair region is the context's first 2P tokens."""
    values, keys, guesses = text[:, 1:2 * pairs:2], text[:, 0:2 * pairs:2], pred[:, 1:2 * pairs:2]  # (B, P)
    bags = [set(row.tolist()) - set(k.tolist()) for row, k in zip(context[:, :2 * pairs], keys)]
    in_bag = np.array([[g in bag for g in row] for row, bag in zip(guesses, bags)])
    answered = np.array([[g in set(v[:i].tolist()) for i, g in enumerate(row)] for row, v in zip(guesses, values)])
    return {"right": guesses == values, "in_bag": in_bag, "fresh": in_bag & ~answered}


@torch.no_grad()
def probe(module, cfg) -> dict:
    from lclab.trials.synthetic import generate

    task, P = cfg.data.tasks[0], cfg.data.kv_pairs
    q = max(1, P // 4)  # a quarter of the queries
    module.eval()
    out = {}
    for mode in ("compressed", "full"):
        parts = []
        for index in range(PROBE_BATCHES):
            context, text, _ = generate(task, PROBE_SEED, index, PROBE_ROWS, cfg.data)
            logits = module.model(torch.from_numpy(context), torch.from_numpy(text), mode)  # (B, S, V)
            parts.append(query_profile(context, text, logits.argmax(-1).numpy(), P))
        prof = {k: np.concatenate([p[k] for p in parts]).mean(0) for k in parts[0]}  # (P,) each
        out[mode] = {"acc": float(prof["right"].mean()), "acc_first": float(prof["right"][:q].mean()),
                     "acc_last": float(prof["right"][-q:].mean()), "in_bag": float(prof["in_bag"].mean()),
                     "fresh": float(prof["fresh"].mean()), "acc_by_query": prof["right"].round(4).tolist()}
    eliminate = 1 / (P - np.arange(P))  # the bag-and-eliminate guesser's accuracy at each query
    out["bag_guess"] = {"acc": float(eliminate.mean()), "acc_first": float(eliminate[:q].mean()),
                        "acc_last": float(eliminate[-q:].mean())}
    return out


def run_one(args: tuple) -> dict:
    task, seed, overrides, threads, out = args
    from lclab.trials import run_trial

    cfg = tiny_config([f"data.tasks=[{task}]", *overrides], seed, threads, out)
    result = run_trial(cfg)
    return {"task": task, "seed": seed, "val_acc": result.metrics[f"val/{task}/acc"], **probe(result.module, cfg)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="+", default=["kv_recall", "kv_offset"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--name", default="kv_shortcut")
    ap.add_argument("--out", default="/tmp/lclab-shortcut")
    a = ap.parse_args()
    jobs = [(t, s, a.overrides, a.threads, a.out) for t in a.tasks for s in a.seeds]
    with ProcessPoolExecutor(a.workers) as pool:
        runs = list(pool.map(run_one, jobs))
    rows = []
    for r in runs:
        for mode in ("compressed", "full"):
            m = r[mode]
            rows.append([r["task"], r["seed"], mode, m["acc"], m["acc_first"], m["acc_last"], m["in_bag"], m["fresh"]])
    g = runs[0]["bag_guess"]
    rows.append(["bag guess", "-", "-", g["acc"], g["acc_first"], g["acc_last"], 1.0, 1.0])
    report(a.name, ["task", "seed", "mode", "acc", "acc first quarter of queries", "acc last quarter",
                    "share of guesses in the bag", "in the bag and not yet answered"], rows,
           {"runs": runs, "overrides": a.overrides, "threads": a.threads, "command": " ".join(["python", *sys.argv])})


if __name__ == "__main__":
    main()
