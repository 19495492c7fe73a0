"""Axis importance with Optuna's own evaluators (fANOVA and PED-ANOVA), with their spread over repeats.

The evaluators run on the scored trials (best nuisance setting per configuration and seed, scientific
axes only), loaded into an in-memory study. fANOVA is repeated over evaluator seeds; PED-ANOVA is
deterministic, so it is repeated over bootstrap resamples of the trials. A ranking whose spread is as
large as its gaps is a noisy ranking, and the report shows it as such."""
from __future__ import annotations

import warnings

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution

REPEATS = 5
EVALUATORS = {
    "fanova": lambda r: optuna.importance.FanovaImportanceEvaluator(seed=r),
    "ped_anova": lambda r: optuna.importance.PedAnovaImportanceEvaluator(),
}


def _distribution(values: pd.Series):
    if pd.api.types.is_numeric_dtype(values) and values.nunique() >= 3:
        return FloatDistribution(float(values.min()), float(values.max()))
    return CategoricalDistribution(sorted(values.unique().tolist(), key=str))


def _study(df: pd.DataFrame, axes: list[str], maximize: bool) -> optuna.Study:
    dists = {a: _distribution(df[a]) for a in axes}
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    study.add_trials([optuna.trial.create_trial(
        params={a: (float(row[a]) if isinstance(dists[a], FloatDistribution) else row[a]) for a in axes},
        distributions=dists, value=float(row["y"])) for row in df.to_dict("records")])
    return study


def importance(df: pd.DataFrame, axes: list[str], maximize: bool, repeats: int = REPEATS) -> pd.DataFrame:
    """Rows (evaluator, axis): mean, sd and min/max of the normalised importance over `repeats` runs.
    Axes with a single observed level carry no information and are left out."""
    axes = [a for a in axes if df[a].nunique() > 1]
    rows = []
    if not axes or len(df) < 4:
        return pd.DataFrame(columns=["evaluator", "axis", "mean", "sd", "min", "max", "repeats"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, make in EVALUATORS.items():
        runs = []
        for r in range(repeats):
            sample = df if name == "fanova" else df.sample(len(df), replace=True, random_state=r)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    runs.append(optuna.importance.get_param_importances(
                        _study(sample, axes, maximize), evaluator=make(r), params=axes, normalize=True))
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. too few distinct trials for the quantile
                continue
        for axis in axes:
            vals = np.array([run.get(axis, 0.0) for run in runs])
            if len(vals):
                rows.append({"evaluator": name, "axis": axis, "mean": vals.mean(), "sd": vals.std(ddof=1) if len(vals) > 1 else 0.0,
                             "min": vals.min(), "max": vals.max(), "repeats": len(vals)})
    out = pd.DataFrame(rows, columns=["evaluator", "axis", "mean", "sd", "min", "max", "repeats"])
    return out.sort_values(["evaluator", "mean"], ascending=[True, False], ignore_index=True)


def ranking(table: pd.DataFrame, evaluator: str = "fanova") -> list[str]:
    sub = table[table.evaluator == evaluator]
    return list(sub.sort_values("mean", ascending=False).axis)
