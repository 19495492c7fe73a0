"""Per-axis effects, interactions and seed noise from a study's scored trials.

A configuration is scored by its best nuisance setting (per seed), as the tuning playbook prescribes. An
effect of `axis = level` is measured against the axis's reference level (the base configuration's), on
*matched* trials where possible: same other scientific axes, same seed. That is exactly the paired
ablation delta for ablation studies, and it removes the other axes' main effects in grids. Only without a
single match, and only in random / TPE samples, is the difference of the two groups' means used instead."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from lclab.analysis.load import Lab
from lclab.analysis.stats import Estimate, difference, holm, paired_effect, pooled_sd

MIN_PAIRS = 2
MAX_LEVELS = 6  # a numeric axis with more distinct values is cut into terciles


@dataclass
class Effect:
    axis: str
    level: object
    reference: object
    estimate: Estimate
    n_seeds: int
    p_holm: float = float("nan")
    # the same comparison within each level of another axis: {(axis, level): (Estimate, p_holm over all strata)}
    strata: dict = field(default_factory=dict)
    # the matched differences behind the estimate, one per (other axes, seed) cell: every seed, drawn in the report
    deltas: dict = field(default_factory=dict)  # {seed: [delta, ...]}

    @property
    def significant(self) -> bool:
        return self.p_holm < 0.05 and not self.estimate.covers_zero


@dataclass
class Interaction:
    """Does the effect of `x` depend on `z`? An F-test of the x-by-z terms against the additive model (all
    scientific axes as factors), and the simple effects of every x level at every z level (matched)."""
    x: str
    z: str
    F: float
    df: tuple[int, int]
    p: float
    n: int
    simple: dict  # {(x level, z level): Estimate} against x's reference within that z level
    reference: object
    p_holm: float = float("nan")

    @property
    def significant(self) -> bool:
        return self.p_holm < 0.05

    @property
    def spread(self) -> float:
        """Largest difference between simple effects of the same x level: the size of the interaction."""
        by_level = {}
        for (lx, _), est in self.simple.items():
            by_level.setdefault(lx, []).append(est.value)
        return max((max(v) - min(v) for v in by_level.values() if len(v) > 1), default=float("nan"))


def scored(lab: Lab, study: str, objective: int = 0) -> pd.DataFrame:
    """One row per (scientific configuration, seed): its scientific axes, `seed`, `config`, `number`, `y`, and
    `learned` (False for a trial that stayed at chance / at the no-context baseline, with `learned_status` saying why;
    True for trials that did not record it)."""
    info = lab.studies[study]
    done = lab.complete(study)
    column = "value" if objective == 0 else f"value_{objective}"
    if "duplicate_of" in done:
        done = done[done["duplicate_of"].isna()]
    if "nuisance_best" in done and info.roles and any(r == "nuisance" for r in info.roles.values()):
        done = done[done["nuisance_best"].astype(bool)]
    axes = [a for a in info.scientific if f"param.{a}" in done]
    out = pd.DataFrame({a: done[f"param.{a}"].map(_level) for a in axes})
    out["seed"] = done["seed"].astype(int) if "seed" in done else 0
    # a plain Optuna study has no scientific key: the same JSON of its axes' levels stands in for it
    out["config"] = done["scientific_key"] if "scientific_key" in done else \
        [json.dumps(dict(zip(axes, row)), sort_keys=True, default=str) for row in out[axes].itertuples(index=False)]
    out["number"] = done["number"]
    out["y"] = done[column].astype(float)
    learned = done["val/learned"] if "val/learned" in done else pd.Series(np.nan, index=done.index)
    out["learned"] = learned.map(lambda v: not (v == v and float(v) == 0.0)).astype(bool)
    out["learned_status"] = done["val/learned_status"] if "val/learned_status" in done else ""
    out = out[np.isfinite(out["y"])]
    for a in axes:
        if pd.api.types.is_numeric_dtype(out[a]) and out[a].nunique() > MAX_LEVELS:
            out[a] = _thirds(out[a])
    return out.reset_index(drop=True)


def _thirds(values: pd.Series) -> pd.Series:
    """A sampled numeric axis as three levels of equal counts, each named by its rank and the values it holds
    ('1/3: 0.000112 to 0.000411'): sortable, and never an edge outside the values (qcut's labels began lr's first
    third at -0.0009)."""
    codes = pd.qcut(values, 3, labels=False, duplicates="drop")
    k = int(codes.max()) + 1
    spans = values.groupby(codes).agg(["min", "max"])
    return codes.map(lambda c: f"{c + 1}/{k}: {spans.loc[c, 'min']:.3g} to {spans.loc[c, 'max']:.3g}")


def _level(v):
    v = v.item() if hasattr(v, "item") else v
    if v is None or v != v:
        return "—"  # an inactive conditional axis
    return int(v) if isinstance(v, float) and v.is_integer() else v  # params come back as floats next to NaNs


def levels(df: pd.DataFrame, axis: str) -> list:
    """The axis's observed levels as Python values, in a stable order."""
    return sorted((_level(v) for v in df[axis].unique()), key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v)))


def reference_level(df: pd.DataFrame, axis: str, base_point: dict):
    if axis in base_point and base_point[axis] in levels(df, axis):
        return base_point[axis]
    counts = df[axis].map(_level).value_counts()
    return [lv for lv in levels(df, axis) if counts[lv] == counts.max()][0]


def _cell_means(df: pd.DataFrame, keys: list[str]) -> pd.Series:
    return df.groupby([df[k].astype(str) for k in keys])["y"].mean()


def matched(df: pd.DataFrame, axis: str, level, reference, axes: list[str]) -> pd.DataFrame:
    """Cell means of axis=level (`a`) and axis=reference (`b`) for every (other axes, seed) cell that has both."""
    others = [a for a in axes if a != axis] + ["seed"]
    a, b = df[df[axis] == level], df[df[axis] == reference]
    return pd.concat([_cell_means(a, others).rename("a"), _cell_means(b, others).rename("b")], axis=1, join="inner")


def seed_deltas(pairs: pd.DataFrame) -> dict:
    """The matched differences grouped by seed (the last level of the cell index)."""
    seeds = pairs.index.get_level_values(-1) if len(pairs) else []
    out: dict = {}
    for seed, delta in zip(seeds, (pairs.a - pairs.b).values):
        out.setdefault(int(seed), []).append(float(delta))
    return out


def compare(df: pd.DataFrame, axis: str, level, reference, axes: list[str], seed: int = 0,
            matched_only: bool = False, pairs: pd.DataFrame | None = None) -> tuple[Estimate, int]:
    """Effect of axis=level against axis=reference and the number of seeds behind it.

    Matched trials (same other axes, same seed) whenever any exist: an unmatched pool mixes other axes' levels and
    can flip the sign. Only without a single matched pair, and only when the design allows it (`matched_only` False:
    random / TPE samples), is the difference of the two groups' means used instead. `pairs`: `matched(...)` if the
    caller already has it."""
    a, b = df[df[axis] == level], df[df[axis] == reference]
    pairs = matched(df, axis, level, reference, axes) if pairs is None else pairs
    n_seeds = len(set(a.seed) | set(b.seed))
    if len(pairs) or matched_only:
        cells = pairs.index.droplevel("seed") if pairs.index.nlevels > 1 else None
        return paired_effect(pairs.a - pairs.b, cells, seed), n_seeds
    return difference(a.y, b.y, seed), n_seeds


def axis_effects(df: pd.DataFrame, axes: list[str], base_point: dict, strata: bool = True,
                 matched_only: bool = False) -> list[Effect]:
    """Every non-reference level of every axis against its reference, Holm-corrected over the whole family.
    `matched_only` for designs built to be matched (grid, ablation): never an unmatched pool."""
    effects = []
    for axis in axes:
        ref = reference_level(df, axis, base_point)
        for level in (lv for lv in levels(df, axis) if lv != ref):
            pairs = matched(df, axis, level, ref, axes)
            estimate, n_seeds = compare(df, axis, level, ref, axes, matched_only=matched_only, pairs=pairs)
            deltas = seed_deltas(pairs) if estimate.paired else {}
            effects.append(Effect(axis, level, ref, estimate, n_seeds, deltas=deltas))
    for effect, p in zip(effects, holm([e.estimate.p for e in effects])):
        effect.p_holm = float(p)
    if strata:
        found = {id(e): _strata(df, e, axes, effects, matched_only) for e in effects}
        flat = [(e, key, est) for e in effects for key, est in found[id(e)].items()]
        for (e, key, est), p in zip(flat, holm([est.p for _, _, est in flat])):
            e.strata[key] = (est, float(p))
    return effects


def _strata(df, effect: Effect, axes: list[str], effects: list[Effect], matched_only: bool) -> dict:
    """The same comparison within each level of the other axis with the largest effect ("it holds at 1:4 and 1:16")."""
    others = [e for e in effects if e.axis != effect.axis]
    if not others:
        return {}
    by = max(others, key=lambda e: abs(e.estimate.value)).axis
    out = {}
    for level in levels(df, by):
        sub = df[df[by] == level]
        if (sub[effect.axis] == effect.level).any() and (sub[effect.axis] == effect.reference).any():
            est, _ = compare(sub, effect.axis, effect.level, effect.reference, [a for a in axes if a != by],
                             matched_only=matched_only)
            if est.n >= MIN_PAIRS:
                out[(by, level)] = est
    return out


def _dummies(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.get_dummies(df[columns].astype(str), drop_first=True).to_numpy(float)


def interactions(df: pd.DataFrame, pairs: list[tuple[str, str]], axes: list[str], base_point: dict) -> list[Interaction]:
    """One F-test per axis pair (Holm-corrected over pairs) with the simple effects behind it."""
    found = []
    for x, z in pairs:
        main = np.column_stack([np.ones(len(df)), _dummies(df, axes + ["seed"])])
        joint = pd.get_dummies(df[x].astype(str) + " & " + df[z].astype(str), drop_first=True).to_numpy(float)
        full = np.column_stack([main, joint])
        rss = [float(((df.y - m @ np.linalg.lstsq(m, df.y, rcond=None)[0]) ** 2).sum()) for m in (main, full)]
        rank = [np.linalg.matrix_rank(m) for m in (main, full)]
        df1, df2 = rank[1] - rank[0], len(df) - rank[1]
        if df1 < 1 or df2 < 1:
            continue
        F = ((rss[0] - rss[1]) / df1) / max(rss[1] / df2, 1e-300)
        x0 = reference_level(df, x, base_point)
        simple = {}
        for lz in levels(df, z):
            sub = df[df[z] == lz]
            for lx in (v for v in levels(sub, x) if v != x0):
                if (sub[x] == x0).any():
                    simple[(lx, lz)] = compare(sub, x, lx, x0, [a for a in axes if a != z])[0]
        found.append(Interaction(x, z, float(F), (df1, df2), float(stats.f.sf(F, df1, df2)), len(df), simple, x0))
    for inter, p in zip(found, holm([i.p for i in found])):
        inter.p_holm = float(p)
    return found


def two_way(df: pd.DataFrame, x: str, z: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean objective and trial count for every (x, z) cell: the interaction heatmap."""
    return df.pivot_table(index=x, columns=z, values="y", aggfunc="mean"), \
        df.pivot_table(index=x, columns=z, values="y", aggfunc="count").fillna(0).astype(int)


@dataclass(frozen=True)
class SeedNoise:
    """Seed-to-seed standard deviation of the objective, over configurations run with several seeds (of the trials
    that learned). `robust`, the median of the configurations' own sds, is the one used as the null threshold and
    the ranking unit: one unstable configuration inflates `pooled` (and with it the nulls it would let through)."""
    pooled: float
    dof: int
    configs: int
    robust: float


def seed_noise(df: pd.DataFrame) -> SeedNoise:
    groups = [g.y.values for _, g in df.groupby("config") if len(g) > 1]
    sd, dof = pooled_sd(groups)
    robust = float(np.median([np.std(g, ddof=1) for g in groups])) if groups else float("nan")
    return SeedNoise(sd, dof, len(groups), robust)


def config_table(df: pd.DataFrame, counted: pd.Series, maximize: bool) -> pd.DataFrame:
    """Scientific configurations ranked by their mean over the seeds that count (`counted`), with the seed spread,
    every seed's value (a trial that did not learn is marked ✗) and the best counted trial."""
    rows = []
    for config, g in df.groupby("config"):
        use = g[counted[g.index]]
        best = use.loc[use.y.idxmax() if maximize else use.y.idxmin()] if len(use) else None
        every = ", ".join(f"{y:.4g}{'' if ok else ' ✗'}" for y, ok in g.sort_values("seed")[["y", "learned"]].values)
        rows.append({"config": config, "mean": use.y.mean() if len(use) else float("nan"),
                     "sd": use.y.std() if len(use) > 1 else float("nan"), "seeds": use.seed.nunique(),
                     "did not learn": int((~g.learned).sum()), "per seed (✗ did not learn)": every,
                     "best_trial": int(best.number) if best is not None else None})
    table = pd.DataFrame(rows).set_index("config")
    levels = pd.DataFrame([json.loads(k) if k.startswith("{") else {} for k in table.index], index=table.index)
    return levels.join(table).sort_values("mean", ascending=not maximize, na_position="last").reset_index(drop=True)
