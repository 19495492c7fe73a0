"""`lclab report`: render analyses as one self-contained HTML page, the same content as Markdown with image
files, `recipe.yaml` (+ one per ratio) and `principles.json`.

Both documents are rendered from one list of blocks, so they cannot drift apart."""
from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lclab.analysis import plots
from lclab.analysis.analyze import StudyAnalysis, analyze, scaling
from lclab.analysis.effects import levels
from lclab.analysis.load import Lab
from lclab.analysis.pareto import COSTS
from lclab.analysis.principles import level_text
from lclab.errors import make_folder
from lclab.trials.db import tokens_spent

APPENDIX_COLUMNS = ["study", "number", "state", "seed", "value", "learned", "duration_s", "train/tokens_seen", "fail_reason",
                    "infeasible", "run_dir"]


# blocks: ("h", level, text) | ("p", text) | ("list", [text]) | ("table", DataFrame) | ("img", name, png) | ("code", text)
def build(lab: Lab, studies: list[str], out: Path, objective: int = 0, target_flops: float | None = None,
          min_effect: float | None = None, include_unlearned: bool = False) -> dict[str, Path]:
    analyses = [analyze(lab, s, objective, min_effect, include_unlearned) for s in studies]
    scale = scaling(lab, studies, objective, target_flops)
    blocks = _header(lab, studies, analyses)
    for a in analyses:
        blocks += _study_blocks(lab, a)
    blocks += _scaling_blocks(scale, analyses[0].metric)
    blocks += _appendix(lab, studies)
    make_folder(out, "-o", "name a folder for the report, e.g. reports/quickstart")
    paths = {"html": out / "report.html", "markdown": out / "report.md", "principles": out / "principles.json"}
    if any(a.recipes for a in analyses):
        paths["recipe"] = out / "recipe.yaml"
    paths["html"].write_text(_html(blocks, f"lclab report: {', '.join(studies)}"))
    paths["markdown"].write_text(_markdown(blocks, out / "images"))
    _write_recipes(out, analyses, lab)
    paths["principles"].write_text(json.dumps(_finite(_principles_json(lab, analyses, scale)), indent=1, default=_jsonable))
    return paths


def _jsonable(v):
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return str(v)


def _finite(obj):
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _header(lab: Lab, studies, analyses) -> list:
    frame = lab.frame[lab.frame.study.isin(studies)]
    versions = sorted({f"{c[:12]}{' (dirty tree)' if d is True else ''}" for c, d in
                       frame[["code_version.commit", "code_version.dirty"]].dropna(subset=["code_version.commit"]).values}
                      if "code_version.commit" in frame else [])
    corpora = sorted(frame["meta/data_fingerprint"].dropna().unique()) if "meta/data_fingerprint" in frame else []
    plugins = sorted(f"{c.removeprefix('plugins.')} (sha256 {h})" for c in frame if c.startswith("plugins.")
                     for h in frame[c].dropna().unique())
    blocks = [("h", 1, f"lclab report: {', '.join(studies)}"),
              ("list", [f"storage: {lab.storage}", f"studies: {', '.join(studies)}",
                        f"code version: {', '.join(versions) or 'not recorded'}",
                        f"data fingerprint: {', '.join(corpora) or 'not recorded'}",
                        *([f"plugins: {', '.join(plugins)}"] if plugins else []),
                        f"generated: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"]),
              ("h", 2, "Overview")]
    rows = []
    for a in analyses:
        f = frame[frame.study == a.info.name]
        others = [f"--objective {i}: {m} ({a.info.directions[i][:3]})" for i, m in enumerate(a.info.objectives) if m != a.metric]
        rows.append({"study": a.info.name, "objective": f"{a.metric} ({'max' if a.maximize else 'min'})" + (
                         f"; the study's other objectives: {', '.join(others)}" if others else ""),
                     "sampler": a.info.sampler, "budget": json.dumps(a.info.budget),
                     **{s: a.states.get(s, 0) for s in ("COMPLETE", "PRUNED", "INFEASIBLE", "FAIL", "RUNNING", "WAITING")},
                     "configurations": a.every_seed.config.nunique(), "tokens trained": f"{tokens_spent(f):.3g}",
                     "trial hours": f"{float(f.duration_s.fillna(0).sum()) / 3600:.2g}"})  # 2 digits: a CPU study is minutes
    blocks.append(("table", pd.DataFrame(rows)))
    for a in analyses:
        axes = [{"axis": ax, "role": role, "levels": ", ".join(map(level_text, levels(a.every_seed, ax)))
                 if ax in a.every_seed else "(tuned per configuration)" if role == "nuisance" else ""}
                for ax, role in a.info.roles.items()]
        blocks += [("p", f"What {a.info.name} searched ({a.info.space_file or 'space file not recorded'}):"),
                   ("table", pd.DataFrame(axes))]
    parts = [{"part": c.removeprefix("parts."), "what it is (where it comes from)": d}
             for c in sorted(frame) if c.startswith("parts.") for d in frame[c].dropna().unique()[:1]]
    if parts:
        blocks += [("p", "The registered parts the trials used, as each trial recorded them:"), ("table", pd.DataFrame(parts))]
    return blocks


def _fmt_effects(effects) -> pd.DataFrame:
    return pd.DataFrame([{"axis": e.axis, "level": e.level, "reference": e.reference, "Δ": e.estimate.value,
                          "CI low": e.estimate.lo, "CI high": e.estimate.hi,
                          "n": f"{e.estimate.n} {'pairs' if e.estimate.paired else 'trials'}", "seeds": e.n_seeds,
                          "p": e.estimate.p, "p_holm": e.p_holm} for e in effects])


def _study_blocks(lab: Lab, a: StudyAnalysis) -> list:
    name = a.info.name
    noise = a.noise
    blocks = [("h", 2, f"{name}: principles")]
    blocks += [("p", f"Note: {n}") for n in a.notes]
    blocks.append(("list", [f"[{c.grade}] {c.text}" for c in a.claims] or
                   ["No claims: nothing was measured that could support one."]))
    text = (f"Seed-to-seed noise: sd = {noise.robust:.3g}, the median of {noise.configs} replicated configurations' own "
            f"sds (the ranking table has each); pooled over them it is {noise.pooled:.3g} ({noise.dof} degrees of freedom), "
            "which one unstable configuration can inflate. Trials that did not learn are not in either."
            if noise.configs else "Seed-to-seed noise: unknown (no configuration has two seeds"
                                  f"{' that learned' if len(a.scored) < len(a.every_seed) else ''}).")
    blocks.append(("p", text + (f" Smallest effect of interest for null results: {a.min_effect:.3g}."
                                 if np.isfinite(a.min_effect) else "")))
    blocks += _fidelity_blocks(a)
    blocks += _literature_blocks(a)
    blocks.append(("h", 3, "Every seed"))
    blocks.append(("img", f"{name}_seeds.png", plots.seeds(_seed_points(a), a.metric)))
    blocks.append(("h", 3, "Importance"))
    if len(a.importance) and a.importance.axis.nunique() > 1:
        blocks += [("img", f"{name}_importance.png", plots.importance(a.importance)),
                   ("table", a.importance.round(4))]
    elif len(a.importance):
        blocks.append(("p", f"Left out: the study varies one axis ({a.importance.axis.iloc[0]}), whose importance is 1.0 "
                            "by construction; its effect is below."))
    else:
        blocks.append(("p", "Not enough configurations for fANOVA / PED-ANOVA (needs 4 scored trials and a varied axis)."))
    blocks.append(("h", 3, "Per-axis effects"))
    if a.effects:
        blocks += [("p", "Each level against the axis's reference (the base configuration's level), on matched trials "
                         "(same other axes, same seed) where they exist; bootstrap 95% CI, t-test, Holm over all rows."),
                   ("img", f"{name}_effects.png", plots.effects(a.effects, a.metric)), ("table", _fmt_effects(a.effects))]
    else:
        blocks.append(("p", "No effects: fewer than two measured levels on every scientific axis."))
    blocks.append(("p", "Configurations ranked by their mean over seeds:"))
    blocks.append(("table", a.configs.head(30)))
    blocks.append(("h", 3, "Interactions"))
    if a.two_ways:
        for (x, z), (means, counts) in a.two_ways.items():
            blocks.append(("img", f"{name}_{x}_x_{z}.png", plots.heatmap(means, counts, x, z, a.metric)))
        blocks.append(("p", "F-test of the pair's joint terms against the additive model (every scientific axis and the "
                            "seed as factors), Holm over pairs; then the simple effects behind it (matched, 95% CI)."))
        blocks.append(("table", pd.DataFrame([{"axes": f"{i.x} x {i.z}", "F": i.F, "df": f"{i.df[0]}, {i.df[1]}", "p": i.p,
                                               "p_holm": i.p_holm, "spread of simple effects": i.spread}
                                              for i in a.interactions])))
        blocks.append(("table", pd.DataFrame([{"axes": f"{i.x} x {i.z}", i.x: lx, i.z: lz, "reference": i.reference,
                                               "Δ": e.value, "CI low": e.lo, "CI high": e.hi, "n": e.n}
                                              for i in a.interactions for (lx, lz), e in i.simple.items()])))
    else:
        blocks.append(("p", "Interactions need at least two axes with two measured levels each."))
    blocks.append(("h", 3, "Cost and Pareto"))
    for column, front in a.fronts.items():
        blocks.append(("img", f"{name}_pareto_{column.replace('/', '_')}.png",
                       plots.pareto(front, column, COSTS[column], a.metric)))
    if a.fronts:
        first = next(iter(a.fronts.values()))
        blocks.append(("table", first[first.pareto].drop(columns=["pareto"])))
    if a.fronts_skipped:
        blocks.append(("p", "Not drawn, because they cannot show a trade-off: " + "; ".join(a.fronts_skipped.values()) + "."))
    blocks.append(("h", 3, "Recipe"))
    if not a.recipes:
        blocks.append(("p", "No recipe: no configuration has a trial that learned." if a.info.made_by_lclab(
            lab.frame[lab.frame.study == name]) else "No recipe: the trials store no trial config to train (see the notes)."))
    for r in a.recipes:
        blocks.append(("code", r.yaml([f"study {name}" + (f", ratio {r.ratio}" if r.ratio is not None else "")])))
    return blocks


def _fidelity_blocks(a: StudyAnalysis) -> list:
    """How far a synthetic proxy's ranking of designs carries to real text (its twin study), or that nobody knows."""
    f = a.fidelity
    if f is None:
        return []
    blocks = [("h", 3, "Fidelity to real text"),
              ("p", f"This study ranks designs on a synthetic proxy, and {f.summary()}. "
                    + ("Its principles carry to real text as far as that ordering goes." if f.grade == "strong" else
                       "Every principle above says so; measure it with a real-text twin study of the same "
                       "configurations (fidelity_of: in the space file, e.g. search_space/presets/fidelity_text.yaml)."))]
    if f.table is not None:
        blocks.append(("table", f.table))
    if f.by_axis:
        blocks.append(("p", "Per axis, over the base configuration and that axis's levels around it:"))
        blocks.append(("table", pd.DataFrame([{"axis": axis, "grade": g.grade, "configurations": g.n_configs,
                                               "Spearman": g.spearman, "Spearman CI": _ci(g.spearman_ci),
                                               "Kendall": g.kendall, "Kendall CI": _ci(g.kendall_ci),
                                               "pairs ordered alike": g.agree, "its CI": _ci(g.agree_ci)}
                                              for axis, g in f.by_axis.items()])))
    return blocks


def _ci(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if np.isfinite(ci[0]) else "–"


def _literature_blocks(a: StudyAnalysis) -> list:
    """The published findings this study's axes can speak to, each beside the study's own result."""
    tested = [c for c in a.literature if c.result != "not tested"]
    blocks = [("h", 3, "The literature")]
    if not tested:
        return blocks + [("p", f"None of the {len(a.literature)} published findings lclab checks "
                               "(analysis/literature.yaml) concerns this study's axes.")]
    blocks.append(("p", "Published findings on this study's axes, beside its own matched result (effect of the level "
                        "against the reference, + meaning better). A disagreement on a small or synthetic proxy questions "
                        "the proxy's fidelity to the full-scale setting before it questions the finding."))
    blocks.append(("table", pd.DataFrame([{"finding": c.finding.text, "source": c.finding.source, "result": c.result,
                                           "this study": c.evidence} for c in tested])))
    untested = [c.finding.text for c in a.literature if c.result == "not tested"]
    if untested:
        blocks.append(("p", f"Not tested here: {'; '.join(untested)}."))
    return blocks


def _seed_points(a: StudyAnalysis) -> pd.DataFrame:
    """Every scored trial as (configuration label, objective, learned), configurations in ranking order."""
    every = a.every_seed
    axes = [ax for ax in a.info.scientific if ax in every]
    if not axes:
        return pd.DataFrame({"label": every.config, "y": every.y, "learned": every.learned})
    label = lambda rows: rows[axes].astype(str).agg(", ".join, axis=1)  # noqa: E731
    rank = {lab: i for i, lab in enumerate(label(a.configs))}
    points = pd.DataFrame({"label": label(every), "y": every.y, "learned": every.learned})
    return points.sort_values("label", key=lambda labels: labels.map(rank), kind="stable")


def _scaling_blocks(scale, metric: str) -> list:
    blocks = [("h", 2, "Iso-compute and scaling")]
    blocks += [("p", n) for n in scale.notes]
    if scale.fits:
        blocks.append(("img", "scaling.png", plots.scaling(scale, metric)))
        blocks.append(("table", pd.DataFrame([{"design": f.design, "E": f.E, "A": f.A, "alpha": f.alpha,
                                               "alpha CI": f"{f.alpha_ci[0]:.3g} to {f.alpha_ci[1]:.3g}", "R²": f.r2,
                                               "budgets": f.levels, "warnings": "; ".join(f.warnings) or "none"}
                                              for f in scale.fits])))
        fitted = scale.rows[scale.rows.config.isin([f.design for f in scale.fits])]
        iso = fitted.groupby(["compute", "config"]).y.mean().unstack()
        blocks += [("p", "Designs at equal training FLOPs:"), ("table", iso.reset_index())]
        if len(scale.predictions):
            blocks += [("p", f"Extrapolated to {scale.target:.3g} training FLOPs (bootstrap 95% interval):"),
                       ("table", scale.predictions)]
    return blocks


def _appendix(lab: Lab, studies) -> list:
    frame = lab.frame[lab.frame.study.isin(studies)].copy()
    if "val/learned" in frame:
        frame["learned"] = frame["val/learned"].map({1.0: "yes", 0.0: "NO: did not learn"})
    cols = [c for c in APPENDIX_COLUMNS if c in frame] + [c for c in frame.columns if c.startswith("param.")]
    return [("h", 2, "Appendix: all trials"), ("table", frame[cols])]


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return str(v)


def _html(blocks, title: str) -> str:
    body = []
    for b in blocks:
        if b[0] == "h":
            body.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            body.append(f"<p>{html.escape(b[1])}</p>")
        elif b[0] == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in b[1]) + "</ul>")
        elif b[0] == "table":
            body.append(b[1].to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0, classes="t"))
        elif b[0] == "img":
            data = base64.b64encode(b[2]).decode()
            body.append(f'<img alt="{html.escape(b[1])}" src="data:image/png;base64,{data}">')
        elif b[0] == "code":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table.t{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}table.t td,table.t th{padding:3px 8px;"
             "border-bottom:1px solid #ddd;text-align:left}img{max-width:100%;display:block;margin:1em 0}"
             "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}li{margin:.3em 0}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")


def _markdown(blocks, images: Path) -> str:
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for b in blocks:
        if b[0] == "h":
            lines.append(f"{'#' * b[1]} {b[2]}\n")
        elif b[0] == "p":
            lines.append(f"{b[1]}\n")
        elif b[0] == "list":
            lines.append("\n".join(f"- {t}" for t in b[1]) + "\n")
        elif b[0] == "table":
            df = b[1]
            lines.append("| " + " | ".join(map(str, df.columns)) + " |")
            lines.append("|" + "---|" * len(df.columns))
            lines += ["| " + " | ".join(_cell(v).replace("|", "/") for v in row) + " |" for row in df.itertuples(index=False)]
            lines.append("")
        elif b[0] == "img":
            (images / b[1]).write_bytes(b[2])
            lines.append(f"![{b[1]}](images/{b[1]})\n")
        elif b[0] == "code":
            lines.append(f"```yaml\n{b[1]}```\n")
    return "\n".join(lines)


def _write_recipes(out: Path, analyses, lab: Lab) -> None:
    def header(path: Path, recipe) -> list[str]:
        # the command works from where the report was made (the user's working directory), not only from `out`
        where = os.path.relpath(path, Path.cwd()) if path.is_absolute() else str(path)
        undecided = [f"{e['axis']} = {e['chosen']}" for e in recipe.evidence if not e["decided"]]
        verdict = ("inconclusive choices (no alternative was shown worse; more seeds could change them): "
                   + ", ".join(undecided)) if undecided else \
            "every searched choice below is decided by the data" if recipe.evidence else \
            "no axis besides the ratio was searched: everything else is the study's base config"
        lines = [f"lclab recipe, {dt.date.today()}, from {lab.storage}", f"train it: lclab train {where}", verdict]
        fidelity = owner[id(recipe)].fidelity
        if fidelity is not None and fidelity.grade != "strong":  # a proxy's recipe carries what its principles do
            lines.append(f"chosen on a synthetic proxy: {fidelity.summary()}")
        return lines

    owner = {id(r): a for a in analyses for r in a.recipes}
    every = [r for a in analyses for r in a.recipes]
    if not every:
        return  # the report says why (no trial learned); no recipe is better than a recipe from noise
    best = max(every, key=lambda r: r.mean if analyses[0].maximize else -r.mean)
    (out / "recipe.yaml").write_text(best.yaml(header(out / "recipe.yaml", best)))
    for a in analyses:
        for r in a.recipes:
            if r.ratio is not None:
                path = out / f"recipe_{a.info.name}_r{r.ratio}.yaml"
                path.write_text(r.yaml(header(path, r)))


def _principles_json(lab: Lab, analyses, scale) -> dict:
    return {"storage": lab.storage, "generated": dt.datetime.now(dt.timezone.utc).isoformat(),
            "studies": {a.info.name: {
                "metric": a.metric, "direction": "maximize" if a.maximize else "minimize",
                "seed_sd": a.noise.robust, "seed_sd_pooled": a.noise.pooled, "seed_sd_dof": a.noise.dof,
                "min_effect": a.min_effect, "notes": a.notes,
                "claims": [c.to_dict() for c in a.claims],
                "literature": [c.to_dict() for c in a.literature],
                "fidelity": a.fidelity.to_dict() if a.fidelity else None,
                "recipes": [{"ratio": r.ratio, "trial": r.trial, "mean": r.mean, "seeds": r.seeds, "evidence": r.evidence}
                            for r in a.recipes]} for a in analyses},
            "scaling": [{"design": f.design, "alpha": f.alpha, "alpha_ci": list(f.alpha_ci), "r2": f.r2,
                         "budgets": f.levels, "warnings": f.warnings} for f in scale.fits]}
