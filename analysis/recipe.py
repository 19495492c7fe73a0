"""The recommended configuration per compression ratio, in the trial-config format, with its evidence.

For each ratio (or once, when the ratio was not searched) the best scientific configuration by its mean
over seeds is chosen; every axis of it is then compared with each alternative level (matched trials
within the same ratio). An axis is *decided* when every alternative is significantly worse, otherwise it
is *undecided* and the recipe lists the levels that did as well."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import yaml

from lclab.analysis.effects import compare
from lclab.analysis.load import Lab, trial_config
from lclab.analysis.stats import holm

# fields a recipe should not inherit from the trial it was copied from
DROP = ("output_dir", "progress", "threads")


@dataclass
class Recipe:
    ratio: object  # None when ratio was not an axis
    config: dict  # a trial config, trainable as-is
    mean: float
    seeds: int
    trial: int
    evidence: list[dict] = field(default_factory=list)  # per axis: chosen, decided, alternatives with Δ, CI, p_holm

    def yaml(self, header: list[str]) -> str:
        lines = [f"# {h}" for h in header]
        lines.append(f"# chosen: trial #{self.trial}, mean objective {self.mean:.4g} over {self.seeds} seed(s)")
        for ev in self.evidence:
            status = "decided" if ev["decided"] else "UNDECIDED"
            alts = "; ".join(f"vs {a['level']}: Δ {a['delta']:+.3g} [{a['lo']:+.3g}, {a['hi']:+.3g}], p_holm {a['p_holm']:.3g}"
                             for a in ev["alternatives"]) or "no alternative measured"
            lines.append(f"#   {ev['axis']} = {ev['chosen']} ({status}): {alts}")
        return "\n".join(lines) + "\n" + yaml.safe_dump(self.config, sort_keys=False)


def recipes(lab: Lab, study: str, df: pd.DataFrame, axes: list[str], maximize: bool) -> list[Recipe]:
    out = []
    strata = [(lv, df[df["ratio"] == lv]) for lv in sorted(df["ratio"].unique())] if "ratio" in axes else [(None, df)]
    for ratio, sub in strata:
        if sub.empty:  # every trial of this stratum was left out (did not learn): nothing to recommend
            continue
        means = sub.groupby("config").agg(y=("y", "mean"), seeds=("seed", "nunique"), number=("number", "first"))
        best = means.sort_values("y", ascending=not maximize).iloc[0]
        chosen = json.loads(best.name) if str(best.name).startswith("{") else {}
        best_rows = sub[sub.config == best.name]
        number = int(best_rows.loc[best_rows.y.idxmax() if maximize else best_rows.y.idxmin(), "number"])
        stored = trial_config(lab, study, number)
        if stored is None:  # not an lclab trial: nothing trainable to recommend (the report says so)
            continue
        config = {k: v for k, v in stored.items() if k not in DROP}
        config["name"] = f"recipe_{study}" + (f"_r{ratio}" if ratio is not None else "")
        out.append(Recipe(ratio, config, float(best.y), int(best.seeds), number,
                          _evidence(sub, chosen, [a for a in axes if a != "ratio"], maximize)))
    return out


def _evidence(df: pd.DataFrame, chosen: dict, axes: list[str], maximize: bool) -> list[dict]:
    rows = []
    for axis in axes:
        if axis not in chosen:
            continue
        for level in df[axis].unique():
            if level != chosen[axis]:
                est, _ = compare(df, axis, chosen[axis], level, axes)
                rows.append({"axis": axis, "level": level, "delta": est.value, "lo": est.lo, "hi": est.hi, "p": est.p})
    for row, p in zip(rows, holm([r["p"] for r in rows])):
        better = (row["delta"] > 0) == maximize
        row["p_holm"], row["beaten"] = float(p), bool(better and p < 0.05 and not (row["lo"] <= 0 <= row["hi"]))
    evidence = []
    for axis in axes:
        if axis in chosen:
            alts = [r for r in rows if r["axis"] == axis]
            evidence.append({"axis": axis, "chosen": chosen[axis], "decided": bool(alts) and all(a["beaten"] for a in alts),
                             "alternatives": [{k: v for k, v in a.items() if k not in ("axis", "p")} for a in alts]})
    return evidence
