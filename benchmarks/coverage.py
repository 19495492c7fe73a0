"""Do the report's 95% intervals cover the true effect at the sample sizes the lab uses? Matched differences are
drawn with a known effect and seed noise, then `analysis.stats.paired_effect` (the estimator behind every
matched claim) is run on them; coverage is the share of intervals that contain the truth.

One matched pair per seed is what an ablation gives (one factor changed around the base, per seed); many pairs
per seed is what a grid gives (the other axes' cells). Target: within 3 points of 95%.

    python benchmarks/coverage.py [--draws 2000]
"""
from __future__ import annotations

import argparse
from unittest import mock

import numpy as np

from _common import report
from lclab.analysis import stats
from lclab.analysis.stats import paired_effect

TRUE_EFFECT, SIGMA = -0.10, 0.02


def coverage(seeds: int, cells: int, draws: int) -> tuple[float, float]:
    """(coverage of the 95% interval, share of draws with p < 0.05) over `draws` planted studies."""
    rng = np.random.default_rng(seeds * 100 + cells)  # the same draws for both estimators
    hits, significant = 0, 0
    for i in range(draws):
        # a difference of two trials: each with its own seed noise (the cell's mean cancels in the pair)
        deltas = TRUE_EFFECT + rng.normal(0, SIGMA, (cells, seeds)) - rng.normal(0, SIGMA, (cells, seeds))
        strata = np.repeat(np.arange(cells), seeds) if cells > 1 else None
        est = paired_effect(deltas.ravel(), strata, seed=i)
        hits += est.lo <= TRUE_EFFECT <= est.hi
        significant += est.p < 0.05
    return hits / draws, significant / draws


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=2000)
    a = ap.parse_args()
    rows = []
    for cells in (1, 6):
        for seeds in (2, 3, 5):
            cov, sig = coverage(seeds, cells, a.draws)
            with mock.patch.object(stats, "_wider", lambda boot, *_: boot):  # the bootstrap interval alone, as before
                boot_only, _ = coverage(seeds, cells, a.draws)
            rows.append([f"{cells} pair(s) per seed", seeds, cells * seeds, cov, boot_only, sig, abs(cov - 0.95) <= 0.03])
    report("coverage", ["design", "seeds", "pairs", "coverage of 95% CI", "bootstrap alone", "share p < 0.05",
                        "within 3 points"], rows,
           {"draws": a.draws, "true_effect": TRUE_EFFECT, "sigma": SIGMA, "estimator": "analysis.stats.paired_effect"})


if __name__ == "__main__":
    main()
