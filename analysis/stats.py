"""Small statistics for design comparisons: bootstrap intervals, Welch / paired t-tests, Holm correction.

Numpy + scipy only; every function takes plain arrays so it can be tested against planted truth."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

N_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """An effect with its bootstrap interval and test. `n` counts the observations behind it (pairs when paired)."""
    value: float
    lo: float
    hi: float
    p: float
    n: int
    paired: bool

    @property
    def covers_zero(self) -> bool:
        return self.lo <= 0.0 <= self.hi

    @property
    def bound(self) -> float:
        """The largest |effect| the interval allows."""
        return max(abs(self.lo), abs(self.hi))


def _percentile(boot: np.ndarray) -> tuple[float, float]:
    alpha = (1 - LEVEL) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mean_ci(x, seed: int = 0) -> tuple[float, float, float]:
    """Mean with a percentile-bootstrap interval (a point interval for one observation)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(x), size=(N_BOOT, len(x)))
    return (float(x.mean()), *_percentile(x[idx].mean(axis=1)))


def paired_effect(deltas, seed: int = 0) -> Estimate:
    """Mean of matched differences (same other axes, same seed): bootstrap CI and a one-sample t-test."""
    d = np.asarray(deltas, dtype=float)
    mean, lo, hi = mean_ci(d, seed)
    p = _ttest_p(stats.ttest_1samp(d, 0.0)) if len(d) > 1 else float("nan")
    return Estimate(mean, lo, hi, p, len(d), True)


def difference(a, b, seed: int = 0) -> Estimate:
    """mean(a) - mean(b) for independent groups: stratified bootstrap CI and Welch's t-test."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    value = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Estimate(value, float("nan"), float("nan"), float("nan"), len(a) + len(b), False)
    rng = np.random.default_rng(seed)
    boot = a[rng.integers(0, len(a), (N_BOOT, len(a)))].mean(1) - b[rng.integers(0, len(b), (N_BOOT, len(b)))].mean(1)
    p = _ttest_p(stats.ttest_ind(a, b, equal_var=False))
    return Estimate(value, *_percentile(boot), p, len(a) + len(b), False)


def _ttest_p(result) -> float:
    p = float(result.pvalue)
    return p if np.isfinite(p) else 1.0  # nan only when every difference is exactly zero


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (nan stays nan and does not count as a test)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok])]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def pooled_sd(groups) -> tuple[float, int]:
    """Seed-to-seed standard deviation pooled over replicated configurations, and its degrees of freedom."""
    ss, df = 0.0, 0
    for g in groups:
        g = np.asarray(g, dtype=float)
        if len(g) > 1:
            ss += float(((g - g.mean()) ** 2).sum())
            df += len(g) - 1
    return (float(np.sqrt(ss / df)) if df else float("nan")), df
