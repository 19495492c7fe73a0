"""The same space swept with and without ASHA (same seeds): tokens spent and whether the winner agrees.
Target: <= 30% of the unpruned tokens with the same winner (or one within a seed-std of it).

Two spaces: `design` (pooling x compression ratio, what lclab sweeps) and `lr` (encoder x decoder learning
rates, the hard case: a high learning rate leads early and loses late). Asynchronous ASHA's outcome depends on
the order in which trials reach a rung, so besides the real ASHA sweep (2 workers) the exact Optuna pruner is
replayed over many arrival orders on the unpruned sweep's validation curves: trials are deterministic on CPU,
so a pruned trial's curve is the unpruned one's up to where it stops.

    python benchmarks/sweep_efficiency.py [--steps 400] [--workers 2] [--orders 200] [--spaces design lr] [--lab DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import yaml

from _common import report
from lclab.analysis.curves import learning_curves
from lclab.search_space.registry import PRUNERS, build
from lclab.search_space.space import load_space
from lclab.search_space.local import run_sweep
from lclab.trials.db import load_frame, storage_url, tokens_spent

ROOT = Path(__file__).parents[1]
SPACES = {
    "design": {"pooling": ["mean", "max", "last", "concat", "attention", "memory"], "ratio": [4, 8, 16]},
    # from useful to useless, shuffled so that ASHA does not get the easy order (best first) from the grid
    "lr": {"lr_encoder": [1.0e-4, 3.0e-6, 1.0e-3, 1.0e-6, 3.0e-4, 1.0e-5, 3.0e-3, 3.0e-5], "lr_decoder": [3.0e-4, 1.0e-4]},
}
RUNGS = 20  # validate (and let the pruner decide) at every 5% of the budget; ASHA's rungs at 5%, 15%, 45%
METRIC = "val/loss_compressed"  # smoother early than accuracy


def space_file(tmp: Path, name: str, axes: dict, pruner, steps: int, seeds=(0,)) -> Path:
    base = yaml.safe_load((ROOT / "configs/trial/tiny.yaml").read_text())
    base["train"]["val_every"] = steps // RUNGS
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"name": name, "base": str(tmp / "base.yaml"), "axes": {k: {"values": list(v)} for k, v in axes.items()},
            "constraints": ["(window - overlap) % ratio == 0"],
            "objectives": [{"metric": METRIC, "direction": "minimize"}], "sampler": "grid", "pruner": pruner,
            "budget": {"steps": steps}, "seeds": list(seeds), "n_trials": int(np.prod([len(v) for v in axes.values()]))}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def key(row, axes) -> str:
    return " / ".join(f"{row[f'param.{a}']:g}" if isinstance(row[f"param.{a}"], float) else str(row[f"param.{a}"]) for a in axes)


def replay(curves: list[dict], finals: np.ndarray, pruner_spec: dict, order) -> tuple[float, float]:
    """(token share, winner's final value) of one arrival order under the real Optuna pruner."""
    study = optuna.create_study(pruner=build(PRUNERS, pruner_spec))
    spent, done, full = 0, [], max(curves[0])
    for i in order:
        trial = study.ask()
        for step, value in sorted(curves[i].items()):
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, finals[i])
            done.append(finals[i])
        spent += step
    return spent / (full * len(curves)), min(done, default=np.inf)


def bench(name: str, axes: dict, tmp: Path, lab: Path, a) -> tuple[list, dict]:
    first_rung = (a.steps // RUNGS) * 32 * 128  # tokens at the first validation (tiny: batch 32, 64 + 64 tokens)
    asha = {"name": "asha", "min_resource": first_rung, "reduction_factor": 3}
    frames = {}
    for kind, pruner in (("unpruned", {"name": "none"}), ("asha", asha)):
        run_sweep(load_space(space_file(tmp, f"{name}_{kind}", axes, pruner, a.steps)), lab, workers=a.workers)
        frames[kind] = load_frame(storage_url(None, lab), [f"{name}_{kind}"])
    plain, pruned = frames["unpruned"], frames["asha"]
    best = plain.loc[plain.value.idxmin()]
    # seed noise of the unpruned winner (2 more seeds), to judge a different ASHA winner
    winner_axes = {k: [getattr(best[f"param.{k}"], "item", lambda: best[f"param.{k}"])()] for k in axes}  # numpy -> YAML
    seeds_path = space_file(tmp, f"{name}_seeds", winner_axes, {"name": "none"}, a.steps, (1, 2))
    run_sweep(load_space(seeds_path), lab, workers=a.workers)
    seed_sd = float(pd.concat([load_frame(storage_url(None, lab), [f"{name}_seeds"]).value, pd.Series([best.value])]).std())
    done = pruned[pruned.state == "COMPLETE"]
    asha_best = done.loc[done.value.idxmin()]
    same_config = np.logical_and.reduce([plain[f"param.{k}"] == asha_best[f"param.{k}"] for k in axes])
    gap = float(plain[same_config].value.iloc[0] - best.value)  # both fully trained, in the unpruned sweep
    share = tokens_spent(pruned) / tokens_spent(plain)

    # every arrival order, on the unpruned curves (tokens at each validation = step * tokens per step)
    curves_frame = learning_curves(plain, METRIC)
    numbers = list(plain.number)
    curves = [dict(zip(curves_frame[curves_frame.number == n].step * 32 * 128, curves_frame[curves_frame.number == n].value))
              for n in numbers]
    finals = plain.set_index("number").loc[numbers, "value"].to_numpy()
    rng = np.random.default_rng(0)
    runs = np.array([replay(curves, finals, asha, rng.permutation(len(numbers))) for _ in range(a.orders)])
    shares, gaps = runs[:, 0], runs[:, 1] - best.value
    met = (shares <= 0.30) & (gaps <= seed_sd)
    rows = [[name, "unpruned", len(plain), 0, 1.0, key(best, axes), best.value, ""],
            [name, "asha (2 workers)", len(done), int((pruned.state == "PRUNED").sum()), share, key(asha_best, axes),
             float(asha_best.value), f"gap {gap:.3f} vs seed sd {seed_sd:.3f}: {'met' if share <= 0.3 and gap <= seed_sd else 'missed'}"],
            [name, f"asha, {a.orders} orders", "", "", float(np.median(shares)), f"same winner {np.mean(gaps == 0):.0%}", "",
             f"share p10-p90 {np.quantile(shares, 0.1):.2f}-{np.quantile(shares, 0.9):.2f}; target met in {met.mean():.0%}"]]
    summary = {"token_share": share, "winner_gap": gap, "seed_sd": seed_sd, "met": bool(share <= 0.3 and gap <= seed_sd),
               "orders": a.orders, "order_share_median": float(np.median(shares)), "order_same_winner": float(np.mean(gaps == 0)),
               "order_within_seed_sd": float(np.mean(gaps <= seed_sd)), "order_target_met": float(met.mean())}
    return rows, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    ap.add_argument("--lab", type=Path, help="keep the sweeps here (a rerun reuses finished ones); default: a temporary one")
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows, summary = [], {"target_share": 0.30}
    with tempfile.TemporaryDirectory() as tmp:
        lab = a.lab or Path(tmp) / "lab"
        for name in a.spaces:
            space_rows, summary[name] = bench(name, SPACES[name], Path(tmp), lab.resolve(), a)
            rows += space_rows
    report("sweep_efficiency", ["space", "sweep", "complete", "pruned", "token share", "winner", "winner loss", "verdict"],
           rows, summary)


if __name__ == "__main__":
    main()
