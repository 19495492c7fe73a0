"""Fidelity: does a synthetic proxy rank designs like real text? A proxy study declares its twin in its space file
(`fidelity_of: <a study on real text with the same configurations>`); this module compares the two studies'
objectives over their matched configurations:

- Spearman's rho and Kendall's tau (tau-a) between the configurations' seed means, each oriented so that larger is better;
- the share of pairs of configurations the two studies order the same way;
- 95% percentile intervals for all three from a bootstrap over the seeds (what a re-run would change), in each study
  independently. A seed moves every configuration alike (same data order, same initialisation of shared shapes), so
  when every configuration of a study ran the same seeds, at least `PAIRED_SEEDS` of them, the seeds are resampled
  jointly: configurations are compared on the same seeds, as a paired effect is. With fewer seeds the joint bootstrap
  undercovers (a paired mean's interval: 0.82 at 3 seeds, 0.93 at 5; benchmarks/results/coverage.json), and with
  unmatched seeds it does not apply: each configuration's seeds are then resampled on their own, which overstates the
  noise of an ordering whenever seeds shift configurations alike.

A proxy's fidelity is "strong" when the interval of the agreeing share lies above 3/4 (Kendall's tau above 1/2: the
proxy orders at least three in four pairs of designs like real text, beyond seed noise); "weak" otherwise; and
"unmeasured" without a twin, with too few matched configurations, or with a twin that is not in the database. Every
principle drawn from a synthetic study whose fidelity is not strong says so beside its claim."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from lclab.analysis import effects as fx
from lclab.analysis.load import Lab

BOOTSTRAP = 2000
STRONG_AGREEMENT = 0.75  # lower bound of the agreeing share of pairs: Kendall's tau > 1/2
LEVEL = 0.95
PAIRED_SEEDS = 5  # the fewest shared seeds resampled jointly


@dataclass
class Fidelity:
    proxy: str
    target: str | None
    grade: Literal["strong", "weak", "unmeasured"]
    why: str
    n_configs: int = 0
    spearman: float = float("nan")
    spearman_ci: tuple[float, float] = (float("nan"), float("nan"))
    kendall: float = float("nan")
    kendall_ci: tuple[float, float] = (float("nan"), float("nan"))
    agree: float = float("nan")  # share of pairs of configurations ordered alike
    agree_ci: tuple[float, float] = (float("nan"), float("nan"))
    bootstrap: tuple[str, str] = ("", "")  # how the proxy's and the target's seeds were resampled
    table: pd.DataFrame | None = None  # per matched configuration: both studies' means and seeds
    axes: list[str] = field(default_factory=list)  # the scientific axes the two studies share
    by_axis: dict[str, "Fidelity"] = field(default_factory=dict)  # each axis's slice through the base configuration

    def to_dict(self) -> dict:
        num = lambda v: None if v != v else v  # noqa: E731
        return {"proxy": self.proxy, "target": self.target, "grade": self.grade, "why": self.why,
                "n_configs": self.n_configs, "spearman": num(self.spearman), "spearman_ci": [num(v) for v in self.spearman_ci],
                "kendall": num(self.kendall), "kendall_ci": [num(v) for v in self.kendall_ci],
                "agree": num(self.agree), "agree_ci": [num(v) for v in self.agree_ci],
                "bootstrap": {"proxy": self.bootstrap[0], "target": self.bootstrap[1]},
                "by_axis": {a: f.to_dict() for a, f in self.by_axis.items()}}

    def summary(self) -> str:
        if self.grade == "unmeasured":
            return f"its fidelity to real text is unmeasured ({self.why})"
        rho = f"Spearman {self.spearman:.2f} [{self.spearman_ci[0]:.2f}, {self.spearman_ci[1]:.2f}], " \
            if self.n_configs >= 3 else ""
        return (f"its fidelity to '{self.target}' is {self.grade} over {self.n_configs} matched configurations: {rho}"
                f"Kendall {self.kendall:.2f} [{self.kendall_ci[0]:.2f}, {self.kendall_ci[1]:.2f}], "
                f"{self.agree:.0%} of pairs ordered alike [{self.agree_ci[0]:.0%}, {self.agree_ci[1]:.0%}]"
                f" (seeds resampled: proxy {self.bootstrap[0]}, target {self.bootstrap[1]})")


def _goodness(lab: Lab, study: str, objective: int) -> pd.DataFrame:
    """Trials that learned, with `good` = the objective oriented so that larger is better."""
    df = fx.scored(lab, study, objective)
    df = df[df.learned].copy()
    df["good"] = df.y if lab.studies[study].maximize(objective) else -df.y
    return df


def _stats(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spearman's rho (NaN below 3 configurations), Kendall's tau (tau-a) and the share of pairs ordered alike (a tie
    on either side counts half), for rows of configuration means a, b: (draws, configurations)."""
    i, j = np.triu_indices(a.shape[1], 1)
    same = np.sign(a[:, i] - a[:, j]) * np.sign(b[:, i] - b[:, j])  # (draws, pairs): +1 alike, -1 reversed, 0 a tie
    agree = np.where(same == 0, 0.5, same > 0).mean(1)
    if a.shape[1] < 3:
        return np.full(len(a), np.nan), same.mean(1), agree
    ra, rb = (stats.rankdata(x, axis=1) for x in (a, b))
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # all ties on one side: no ordering, NaN
        rho = (ra * rb).sum(1) / np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return rho, same.mean(1), agree


def fidelity(lab: Lab, proxy: str, objective: int = 0, seed: int = 0) -> Fidelity:
    """The proxy study's fidelity to its declared twin (`fidelity_of`): the proxy's objective `objective` against the
    twin's first objective (typically val/loss_compressed on real text), over every matched configuration; and, in
    `by_axis`, over the base configuration and each axis's levels around it (an ablation's one-axis slices)."""
    info = lab.studies[proxy]
    target = info.fidelity_of
    if not target:
        return Fidelity(proxy, None, "unmeasured", "no real-text twin declared: fidelity_of in the space file")
    if target not in lab.studies or lab.complete(target).empty:
        return Fidelity(proxy, target, "unmeasured", f"its twin study '{target}' has no completed trial in this database")
    p, t = _goodness(lab, proxy, objective), _goodness(lab, target, 0)  # read once, sliced per axis below
    whole = _fidelity(lab, proxy, target, p, t, objective, seed)
    if whole.table is not None and info.base_point:
        for axis in whole.axes:
            others = {a: v for a, v in info.base_point.items() if a != axis and a in whole.axes}
            whole.by_axis[axis] = _fidelity(lab, proxy, target, p, t, objective, seed, only=others)
    return whole


def _fidelity(lab: Lab, proxy: str, target: str, p: pd.DataFrame, t: pd.DataFrame, objective: int, seed: int,
              only: dict | None = None) -> Fidelity:
    """p, t: the two studies' `_goodness` frames. `only`: keep the configurations at these levels of other axes (one
    axis's slice through the base)."""
    info = lab.studies[proxy]
    axes = [a for a in info.scientific if a in p and a in t]
    for a, v in (only or {}).items():
        p, t = p[p[a] == v], t[t[a] == v]
    p, t = p.copy(), t.copy()  # keyed below without touching the caller's frames
    for df in (p, t):  # configurations keyed by the axes the two studies share
        df["key"] = [json.dumps({a: df.at[i, a] for a in axes}, sort_keys=True, default=str) for i in df.index]
    keys = sorted(set(p.key) & set(t.key))
    if len(keys) < 2:
        return Fidelity(proxy, target, "unmeasured", f"{len(keys)} configuration(s) learned in both studies "
                        f"(axes {', '.join(axes) or 'none'} in common): at least 2 are needed to compare orderings")
    frames = [[df[df.key == k] for k in keys] for df in (p, t)]
    (rho, tau, agree), ci, how = orderings(*frames, seed=seed)
    strong = ci[2][0] > STRONG_AGREEMENT
    why = (f"the proxy orders pairs of designs like '{target}' beyond seed noise" if strong else
           f"the share of pairs ordered alike may be {ci[2][0]:.0%} or less (needs a lower bound above "
           f"{STRONG_AGREEMENT:.0%}): the proxy's ranking cannot be carried to real text")
    means = [np.array([f.good.mean() for f in fs]) for fs in frames]
    table = pd.DataFrame({"configuration": keys, "proxy": means[0] * (1 if info.maximize(objective) else -1),
                          "proxy seeds": [len(f) for f in frames[0]],
                          "target": means[1] * (1 if lab.studies[target].maximize(0) else -1),
                          "target seeds": [len(f) for f in frames[1]]})
    return Fidelity(proxy, target, "strong" if strong else "weak", why, len(keys), rho, ci[0], tau, ci[1], agree, ci[2],
                    how, table, axes)


def orderings(proxy: list[pd.DataFrame], target: list[pd.DataFrame], seed: int = 0):
    """How alike two sets of runs order the same configurations. proxy[i], target[i]: configuration i's runs in each,
    with columns `seed` and `good` (larger is better). Returns (Spearman, Kendall, share of pairs ordered alike) of the
    configuration means, their 95% bootstrap intervals over seeds, and how each side's seeds were resampled."""
    means = [np.array([[f.good.mean() for f in fs]]) for fs in (proxy, target)]  # (1, configurations)
    point = tuple(float(v[0]) for v in _stats(*means))
    rng = np.random.default_rng(seed)
    boot, how = zip(*(_bootstrap(fs, rng) for fs in (proxy, target)))
    q = [(1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100]
    ci = [tuple(float(v) for v in np.nanpercentile(x, q)) if np.isfinite(x).any() else (float("nan"), float("nan"))
          for x in _stats(*boot)]
    return point, ci, how


def _bootstrap(frames: list[pd.DataFrame], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """(draws, configurations) of configuration means over resampled seeds, and how they were resampled: jointly when
    every configuration ran the same `PAIRED_SEEDS` or more seeds, else each configuration on its own."""
    seeds = {tuple(sorted(f.seed)) for f in frames}
    shared = next(iter(seeds))
    if len(seeds) == 1 and len(shared) >= PAIRED_SEEDS and len(set(shared)) == len(shared):
        values = np.stack([f.set_index("seed").good.loc[list(shared)].to_numpy() for f in frames], axis=1)  # (seeds, configs)
        return values[rng.integers(0, len(shared), (BOOTSTRAP, len(shared)))].mean(1), f"jointly ({len(shared)} shared seeds)"
    return (np.stack([rng.choice(f.good.to_numpy(), (BOOTSTRAP, len(f))).mean(1) for f in frames], axis=1),
            "per configuration")
