"""One study's analysis, end to end: scored trials -> effects, interactions, importance, noise, claims,
Pareto fronts and recipes. Plus the cross-study scaling fit. The report only renders what this returns."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from lclab.analysis import effects as fx
from lclab.analysis.fidelity import Fidelity, fidelity
from lclab.analysis.importance import importance
from lclab.analysis.literature import Check, check, load_findings
from lclab.analysis.load import Lab, StudyInfo
from lclab.analysis.pareto import design_costs, fronts
from lclab.analysis.principles import Claim, level_text, principles
from lclab.analysis.recipe import Recipe, recipes
from lclab.analysis.scaling import Fit, fit_designs
from lclab.errors import ConfigError

TOP_AXES = 3  # interactions are tested between the axes with the largest effects
BUDGET_AXES = {"steps", "tokens", "flops", "budget_tokens", "budget_flops"}


@dataclass
class StudyAnalysis:
    info: StudyInfo
    metric: str
    maximize: bool
    states: dict
    scored: pd.DataFrame
    axes: list[str]
    configs: pd.DataFrame
    effects: list[fx.Effect]
    interactions: list[fx.Interaction]
    two_ways: dict
    importance: pd.DataFrame
    noise: fx.SeedNoise
    claims: list[Claim]
    min_effect: float
    fronts: dict
    fronts_skipped: dict  # cost column -> why it shows no trade-off
    recipes: list[Recipe]
    notes: list[str] = field(default_factory=list)  # what the data cannot support yet
    every_seed: pd.DataFrame | None = None  # `scored` with the trials that did not learn (`learned` False) kept: what ran
    literature: list[Check] = field(default_factory=list)  # published findings beside this study's result on each
    fidelity: Fidelity | None = None  # a synthetic study's ranking against its real-text twin


def check_study(lab: Lab, study: str) -> None:
    """Refuse studies there is nothing to analyse in, saying why."""
    rows = lab.frame[lab.frame.study == study] if not lab.frame.empty else lab.frame
    if rows.empty:
        raise ConfigError("study", f"study '{study}' in {lab.storage} has no trials yet", "run or resume its sweep first")
    if lab.complete(study).empty:
        states = rows.state.value_counts().to_dict()
        reasons = rows["fail_reason"].dropna().value_counts().head(3).index.tolist() if "fail_reason" in rows else []
        clip = lambda r: r if len(r) <= 300 else f"{r[:299]}…"  # noqa: E731  a long reason's point is in its start
        why = f"; failure reasons: {' | '.join(clip(str(r)) for r in reasons)}" if reasons else ""
        raise ConfigError("study", f"study '{study}' has {len(rows)} trials ({states}) but none completed{why}",
                          f"look at the failed trials' logs (lclab trials {study} --where \"state == 'FAIL'\"), fix the "
                          "cause and resume the sweep")


def analyze(lab: Lab, study: str, objective: int = 0, min_effect: float | None = None,
            include_unlearned: bool = False) -> StudyAnalysis:
    """Trials that did not learn (at chance, or no better than no context) are left out of every estimate unless
    `include_unlearned`; either way they are counted beside every claim they concern and drawn in the report."""
    check_study(lab, study)
    info = lab.studies[study]
    if not 0 <= objective < len(info.objectives):
        raise ConfigError("--objective", f"study '{study}' has {len(info.objectives)} objective(s) ({', '.join(info.objectives)})",
                          f"pass --objective between 0 and {len(info.objectives) - 1}")
    metric, maximize = info.objectives[objective], info.maximize(objective)
    rows = lab.frame[lab.frame.study == study]
    every = fx.scored(lab, study, objective)
    counted = every.learned | include_unlearned
    df = every[counted].reset_index(drop=True)
    axes = [a for a in info.scientific if a in df and df[a].nunique() > 1]
    notes = _unlearned_notes(every, info.scientific, include_unlearned)
    infeasible = rows[rows.state == "INFEASIBLE"]
    if len(infeasible):
        params = [c for c in rows.columns if c.startswith("param.")]
        points = {}
        for _, r in infeasible.iterrows():
            point = ", ".join(f"{c.removeprefix('param.')} = {level_text(r[c])}" for c in params if r[c] == r[c])
            points.setdefault(r["infeasible"], set()).add(point)
        notes.append(f"{len(infeasible)} points are infeasible and were never trained: " + "; ".join(
            f"{'; '.join(sorted(p))} ({reason})" for reason, p in points.items()))
    running = int((rows.state == "RUNNING").sum())
    if running:
        notes.append(f"{running} trials are still running: every number below may still change.")
    if df.empty:
        notes.append("No scored trial learned: there is nothing to estimate. Train longer or fix the recipe "
                     "(or pass --include-unlearned to analyse them anyway).")
    elif not axes:
        notes.append("No scientific axis has two measured levels yet: no effect can be estimated.")
    # grids and ablations are built to be matched: there an unmatched pool would only mix other axes' levels in
    effects = fx.axis_effects(df, axes, info.base_point, matched_only=info.sampler in ("grid", "ablation")) if axes else []
    noise = fx.seed_noise(df)
    if not info.made_by_lclab(rows):
        notes.append("The trials store no lclab trial config (the study was not made by lclab, e.g. a plain Optuna or "
                     "Hydra sweep): effects, importance and claims come from its parameters and values; no recipe is "
                     "written, as there is no config to train.")
    if noise.configs == 0 and not df.empty:
        notes.append(f"No configuration has more than one seed{' that learned' if len(df) < len(every) else ''}: seed noise is unknown "
                     "(use `lclab sweep --replicate-top K --seeds S`); intervals rest on the spread across configurations.")
    ranked = list(dict.fromkeys(e.axis for e in sorted(effects, key=lambda e: -abs(e.estimate.value))))[:TOP_AXES]
    pairs = [(x, z) for i, x in enumerate(ranked) for z in ranked[i + 1:]]
    inters = fx.interactions(df, pairs, axes, info.base_point)
    claims, used_min = principles(effects, inters, metric, maximize, noise.robust, min_effect)
    for claim in claims:
        _name_unlearned(claim, every, info.scientific, include_unlearned)
    checks = check(load_findings(), effects, maximize, used_min)
    for c in checks:
        _name_unlearned_check(c, every, info.scientific, include_unlearned)
    fid = fidelity(lab, study, objective) if info.proxy else None
    if fid is not None and fid.grade != "strong":
        for claim in claims:  # a proxy's principle carries to real text only as far as its measured fidelity
            claim.text += f" Drawn from a synthetic proxy: {fid.summary()}."
            claim.details["fidelity"] = fid.grade
    front, skipped = fronts(design_costs(rows, df), maximize)
    return StudyAnalysis(
        info, metric, maximize, rows.state.value_counts().to_dict(), df, axes, fx.config_table(every, counted, maximize),
        effects, inters, {(x, z): fx.two_way(df, x, z) for x, z in pairs},
        importance(df, axes, maximize) if len(axes) else pd.DataFrame(), noise, claims, used_min,
        front, skipped, recipes(lab, study, df, axes, maximize), notes, every, checks, fid)


def _label(row, axes: list[str]) -> str:
    return ", ".join(f"{a} = {level_text(row[a])}" for a in axes if a in row) or "the configuration"


def _compared(bad: pd.DataFrame, every: pd.DataFrame, axis: str, compared: list | None, axes: list[str]) -> pd.DataFrame:
    """The trials of `bad` that the comparison of `axis` (between the levels `compared`, or any two) would have used
    had they learned, by `effects.compare`'s rule: at one of those levels, in a cell (other axes, seed) that holds
    another of them, or, where no cell does (an unmatched comparison of random samples), at one of those levels. In an
    ablation, a trial of another axis's arm sits at this axis's reference but has no partner, so it is not counted."""
    if axis not in bad or bad.empty:
        return bad.iloc[:0]
    levels = every[axis].astype(str)
    if compared is not None:
        keep = levels.isin([str(v) for v in compared])
        every, levels = every[keep], levels[keep]
    at_level = bad[axis].astype(str).isin(set(levels))
    cell = [a for a in axes if a in every and a != axis] + ["seed"]
    per_cell = levels.groupby([every[c].astype(str) for c in cell]).nunique()
    shared = {k if isinstance(k, tuple) else (k,) for k in per_cell[per_cell > 1].index}
    if not shared:
        return bad[at_level]
    in_shared = [key in shared for key in zip(*(bad[c].astype(str) for c in cell))]
    return bad[at_level & pd.Series(in_shared, index=bad.index, dtype=bool)]


def _unlearned_rows(claim: Claim, every: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """The trials that did not learn among those a claim compares (its level and reference, or its whole axis)."""
    bad = every[~every.learned]
    level, reference = claim.details.get("level"), claim.details.get("reference")
    if claim.kind == "effect" and claim.axis in bad and level is not None:
        for axis, value in claim.details.get("stratum", {}).items():
            bad, every = bad[bad[axis] == value], every[every[axis] == value]
        bad = _compared(bad, every, claim.axis, [level, reference], axes)
    return bad


def _unlearned_parts(bad: pd.DataFrame, every: pd.DataFrame, axes: list[str]) -> tuple[list[str], dict]:
    """"config: k of n seeds (seed ...)" for each configuration with trials in `bad`, and the same as numbers."""
    parts, counts = [], {}
    for config, g in bad.groupby("config"):
        label = _label(g.iloc[0], axes)
        total = int((every.config == config).sum())
        counts[label] = {"did_not_learn": len(g), "seeds": total, "which": sorted(int(s) for s in g.seed)}
        parts.append(f"{label}: {len(g)} of {total} seeds (seed {', '.join(map(str, sorted(g.seed)))})")
    return parts, counts


def _name_unlearned(claim: Claim, every: pd.DataFrame, axes: list[str], included: bool) -> None:
    """Say beside the claim how many seeds of which configuration did not learn, and what was done with them."""
    bad = _unlearned_rows(claim, every, axes)
    if bad.empty:
        return
    parts, counts = _unlearned_parts(bad, every, axes)
    verb = "included, as asked" if included else "left out"
    claim.text += f" Trials that did not learn ({verb}): {'; '.join(parts)}."
    claim.details["did_not_learn"] = counts


def _name_unlearned_check(c: Check, every: pd.DataFrame, axes: list[str], included: bool) -> None:
    """The same beside a published finding's verdict: a level that lost seeds to "did not learn" is graded on the
    seeds it kept, which a failing recipe can bias (the seeds left are the ones the recipe happened to suit)."""
    if c.result == "not tested":
        return
    f, bad = c.finding, every[~every.learned]
    compared = [f.a, f.b] if f.a is not None and f.b is not None else None
    hit = [_compared(bad, every, f.axis, compared, axes)]
    if f.than:
        hit.append(_compared(bad, every, f.than, None, axes))
    bad = pd.concat(hit).drop_duplicates("number")
    if bad.empty:
        return
    parts, c.did_not_learn = _unlearned_parts(bad, every, axes)
    c.evidence += (f". Trials that did not learn ({'included, as asked' if included else 'left out'}): "
                   f"{'; '.join(parts)}: the verdict rests on {'every seed' if included else 'the seeds that learned'}")


def _unlearned_notes(every: pd.DataFrame, axes: list[str], included: bool) -> list[str]:
    bad = every[~every.learned]
    if bad.empty:
        return []
    what = ("they are included in every estimate below, as asked" if included else
            "they are left out of every estimate below (lclab report --include-unlearned keeps them)")
    notes = [f"{len(bad)} of {len(every)} scored trials did not learn ({what}): "
             + "; ".join(f"trial {int(r.number)} ({_label(r, axes)}, seed {int(r.seed)}): {r.learned_status}"
                         for _, r in bad.iterrows())]
    for config, g in every.groupby("config"):
        if not g.learned.any():
            notes.append(f"{_label(g.iloc[0], axes)} did not learn on any of its {len(g)} seeds: it is not estimated "
                         "below, and that failure is itself a finding about this configuration.")
    return notes


@dataclass
class Scaling:
    fits: list[Fit]
    rows: pd.DataFrame  # config, compute, y
    target: float | None
    predictions: pd.DataFrame  # per design at the target: y, lo, hi, warnings
    notes: list[str]


def scaling(lab: Lab, studies: list[str], objective: int = 0, target_flops: float | None = None) -> Scaling:
    """Objective against training FLOPs per design, across every loaded study (a study per budget, or a
    budget axis). Designs are keyed by their scientific axes minus budget axes."""
    parts = []
    for study in studies:
        if lab.complete(study).empty:
            continue
        df = fx.scored(lab, study, objective)
        done = lab.frame[lab.frame.study == study].set_index("number")
        if "train/flops" not in done:
            continue
        df["compute"] = done.loc[df.number, "train/flops"].values
        keys = [json.loads(k) for k in df.config]
        df["config"] = [json.dumps({a: v for a, v in k.items() if a not in BUDGET_AXES}, sort_keys=True) for k in keys]
        parts.append(df[["config", "compute", "y"]])
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["config", "compute", "y"])
    fits = fit_designs(rows.dropna())
    notes = []
    if not fits:
        levels = rows.groupby("config").compute.nunique().max() if len(rows) else 0
        notes.append(f"No design was measured at 3 or more compute budgets (at most {int(levels or 0)}): no scaling "
                     "fit. Run the same space at several budgets (one study per budget, or a budget axis).")
    preds = []
    if target_flops and fits:
        max_seen = float(rows.compute.max())
        for f in fits:
            y, lo, hi, warns = f.extrapolate(target_flops, max_seen)
            preds.append({"design": f.design, "y": y, "lo": lo, "hi": hi, "alpha": f.alpha,
                          "alpha_lo": f.alpha_ci[0], "alpha_hi": f.alpha_ci[1], "warnings": "; ".join(warns) or "none"})
    return Scaling(fits, rows, target_flops, pd.DataFrame(preds), notes)
