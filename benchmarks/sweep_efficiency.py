"""The same space swept with and without ASHA (same seeds): tokens spent and whether the winner agrees.
Target: <= 30% of the unpruned tokens with the same winner (or one within a seed-std of it).

    python benchmarks/sweep_efficiency.py [--steps 400] [--workers 2]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from _common import report
from search_space.space import load_space
from search_space.sweep import run_sweep
from trials.db import load_frame, storage_url, tokens_spent

ROOT = Path(__file__).parents[1]
# learning rates from useful to useless: the kind of space where most of a sweep's budget is wasted.
# Shuffled, so that ASHA does not get the easy order (best first) from the grid.
LRS = [1.0e-4, 3.0e-6, 1.0e-3, 1.0e-6, 3.0e-4, 1.0e-5, 3.0e-3, 3.0e-5]
LRS_DECODER = [3.0e-4, 1.0e-4]
RUNGS = 20  # validate (and let the pruner decide) at every 5% of the budget; ASHA's rungs at 5%, 15%, 45%


def space_file(tmp: Path, name: str, pruner, steps: int, lrs_encoder=LRS, lrs_decoder=LRS_DECODER, seeds=(0,)) -> Path:
    base = yaml.safe_load((ROOT / "configs/trial/tiny.yaml").read_text())
    base["train"]["val_every"] = steps // RUNGS
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"name": name, "base": str(tmp / "base.yaml"),
            "axes": {"lr_encoder": {"values": list(lrs_encoder)}, "lr_decoder": {"values": list(lrs_decoder)}},
            "objectives": [{"metric": "val/loss_compressed", "direction": "minimize"}],  # smoother early than accuracy
            "sampler": "grid", "pruner": pruner, "budget": {"steps": steps}, "seeds": list(seeds),
            "n_trials": len(lrs_encoder) * len(lrs_decoder)}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    first_rung = (a.steps // RUNGS) * 32 * 128  # tokens at the first validation (tiny: batch 32, 64 + 64 tokens)
    rows, frames = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        lab = Path(tmp) / "lab"
        for name, pruner in (("unpruned", "none"), ("asha", {"name": "asha", "min_resource": first_rung, "reduction_factor": 3})):
            run_sweep(load_space(space_file(Path(tmp), name, pruner, a.steps)), lab, workers=a.workers)
            frame = load_frame(storage_url(None, lab), [name])
            frames[name] = frame
            done = frame[frame.state == "COMPLETE"]
            winner = done.loc[done.value.idxmin()]
            rows.append([name, len(done), int((frame.state == "PRUNED").sum()), tokens_spent(frame),
                         f'{winner["param.lr_encoder"]:g} / {winner["param.lr_decoder"]:g}', winner.value])
        # seed noise of the unpruned winner (2 more seeds), to judge a different ASHA winner
        best = frames["unpruned"].loc[frames["unpruned"].value.idxmin()]
        path = space_file(Path(tmp), "seeds", "none", a.steps, [float(best["param.lr_encoder"])], [float(best["param.lr_decoder"])], (1, 2))
        run_sweep(load_space(path), lab, workers=a.workers)
        seeds = load_frame(storage_url(None, lab), ["seeds"])
        seed_sd = float(pd.concat([seeds.value, pd.Series([best.value])]).std())
        asha_best = frames["asha"].loc[frames["asha"][frames["asha"].state == "COMPLETE"].value.idxmin()]
        plain = frames["unpruned"]
        same_config = (plain["param.lr_encoder"] == asha_best["param.lr_encoder"]) & (plain["param.lr_decoder"] == asha_best["param.lr_decoder"])
        gap = float(plain[same_config].value.iloc[0] - best.value)  # both fully trained, in the unpruned sweep
    share = rows[1][3] / rows[0][3]
    same = rows[0][4] == rows[1][4]
    rows.append(["asha / unpruned", "", "", share, "same" if same else f"differs by {gap:.4f} (seed sd {seed_sd:.4f})", ""])
    report("sweep_efficiency", ["sweep", "complete", "pruned", "tokens", "winner lr enc / dec", "winner loss"], rows,
           {"token_share": share, "same_winner": same, "winner_gap": gap, "seed_sd": seed_sd,
            "within_one_seed_sd": same or gap <= seed_sd, "target_share": 0.30})


if __name__ == "__main__":
    main()
