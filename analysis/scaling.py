"""Objective against training compute, per design: a saturating power law y = E + A * (C / C0)^(-alpha).

Fitted per design on every (compute, seed) observation; intervals come from refitting bootstrap
resamples (within each compute level). Extrapolating to a target compute returns the prediction with its
interval and the reasons the fit should not be trusted, if any."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

MIN_LEVELS = 3  # three parameters: fewer compute levels cannot be fitted at all
N_BOOT = 200


@dataclass
class Fit:
    design: str
    E: float
    A: float
    alpha: float
    alpha_ci: tuple[float, float]
    r2: float
    levels: int
    c0: float
    boot: np.ndarray  # (n_ok, 3) bootstrap parameters, for prediction intervals
    warnings: list[str] = field(default_factory=list)

    def predict(self, compute) -> np.ndarray:
        return _law(np.asarray(compute, float) / self.c0, self.E, self.A, self.alpha)

    def extrapolate(self, compute: float, max_seen: float) -> tuple[float, float, float, list[str]]:
        """Prediction at `compute` with its bootstrap 95% interval, and warnings about trusting it."""
        preds = _law(compute / self.c0, self.boot[:, 0], self.boot[:, 1], self.boot[:, 2])
        lo, hi = np.quantile(preds, [0.025, 0.975]) if len(preds) else (np.nan, np.nan)
        notes = list(self.warnings)
        if compute > 10 * max_seen:
            notes.append(f"extrapolates {compute / max_seen:.0f}x beyond the largest budget measured")
        return float(self.predict(compute)), float(lo), float(hi), notes


def _law(x, E, A, alpha):
    return E + A * np.power(x, -alpha)


def _fit_once(x: np.ndarray, y: np.ndarray):
    span = float(y.max() - y.min()) or 1.0
    decreasing = np.corrcoef(np.log(x), y)[0, 1] < 0 if len(set(x)) > 1 else True
    p0 = (float(y.min() if decreasing else y.max()), span if decreasing else -span, 0.5)
    params, _ = curve_fit(_law, x, y, p0=p0, bounds=([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 5.0]), maxfev=20000)
    return params


def fit(compute, y, design: str = "", seed: int = 0) -> Fit | None:
    """Fit one design; None when it has fewer than MIN_LEVELS distinct compute levels."""
    compute, y = np.asarray(compute, float), np.asarray(y, float)
    levels = np.unique(compute)
    if len(levels) < MIN_LEVELS:
        return None
    c0 = float(np.exp(np.log(levels).mean()))
    x = compute / c0
    try:
        E, A, alpha = _fit_once(x, y)
    except (RuntimeError, ValueError):
        return None
    resid = y - _law(x, E, A, alpha)
    r2 = 1 - float((resid**2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-300)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(compute == c) for c in levels]
    boot = []
    for _ in range(N_BOOT):
        idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
        try:
            boot.append(_fit_once(x[idx], y[idx]))
        except (RuntimeError, ValueError):
            continue
    boot = np.array(boot).reshape(-1, 3)
    lo, hi = np.quantile(boot[:, 2], [0.025, 0.975]) if len(boot) else (np.nan, np.nan)
    notes = []
    if len(levels) < 4:
        notes.append(f"only {len(levels)} budgets for 3 parameters: the fit passes through the points and cannot be checked")
    if r2 < 0.9:
        notes.append(f"poor fit (R² = {r2:.2f})")
    if len(boot) < 0.8 * N_BOOT:
        notes.append(f"{N_BOOT - len(boot)} of {N_BOOT} bootstrap refits failed")
    return Fit(design, float(E), float(A), float(alpha), (float(lo), float(hi)), r2, len(levels), c0, boot, notes)


def fit_designs(rows: pd.DataFrame, compute: str = "compute") -> list[Fit]:
    """rows: `config`, `y` and a compute column; one fit per design with enough budgets."""
    fits = []
    for design, g in rows.groupby("config"):
        f = fit(g[compute].values, g.y.values, str(design))
        if f is not None:
            fits.append(f)
    return fits
