"""Quality against cost: per-configuration means and the Pareto set for each cost axis."""
from __future__ import annotations

import numpy as np
import pandas as pd

# cost columns of the trial frame, lower is cheaper; the compression ratio is the exception (higher is cheaper)
COSTS = {
    "param.ratio": "compression ratio (higher = shorter decoder input)",
    "flops_per_token/encoder": "encoder FLOPs / token",
    "flops_per_token/total": "forward FLOPs / token: encoder, adapter, decoder over latents + text, LM head (analytic)",
    "params/total": "parameters",
    "sys/peak_mem_mb": "peak memory (MB)",
}
HIGHER_IS_CHEAPER = {"param.ratio"}


def design_costs(frame: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """One row per scientific configuration: mean objective `y`, seeds, and the mean of every cost column present,
    with `<column>:sd`, its spread over the configuration's seeds (zero for analytic costs)."""
    present = [c for c in COSTS if c in frame]
    costs = frame.set_index("number").loc[scored.number, present].reset_index(drop=True)
    rows = pd.concat([scored[["config", "y", "seed"]].reset_index(drop=True), costs], axis=1)
    return rows.groupby("config").agg(y=("y", "mean"), seeds=("seed", "nunique"),
                                      **{c: (c, "mean") for c in present},
                                      **{f"{c}:sd": (c, "std") for c in present}).reset_index()


def pareto_mask(quality: np.ndarray, cost: np.ndarray, maximize: bool, cheaper_high: bool = False) -> np.ndarray:
    """True for points no other point beats on quality without costing more (and strictly better on one)."""
    q = np.asarray(quality, float) * (1 if maximize else -1)
    c = np.asarray(cost, float) * (-1 if cheaper_high else 1)
    better_q = q[None, :] >= q[:, None]
    cheaper = c[None, :] <= c[:, None]
    strictly = (q[None, :] > q[:, None]) | (c[None, :] < c[:, None])
    dominated = (better_q & cheaper & strictly).any(axis=1)
    return ~dominated


def fronts(designs: pd.DataFrame, maximize: bool) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """For every cost column whose differences between configurations exceed its noise: the designs sorted by cost
    with a `pareto` flag. The other columns come back with the reason they carry no trade-off."""
    out, skipped = {}, {}
    for column in COSTS:
        if column not in designs:
            continue
        values = designs[column].astype(float)
        spread = float(values.max() - values.min())
        noise = float(np.sqrt(np.nanmean(designs[f"{column}:sd"].astype(float) ** 2))) if designs[f"{column}:sd"].notna().any() else 0.0
        if spread == 0:
            skipped[column] = f"{COSTS[column]}: every configuration costs the same"
        elif spread <= 3 * noise or spread <= 0.01 * abs(float(values.mean())):
            skipped[column] = (f"{COSTS[column]}: configurations differ by {spread:.3g} at most, within its noise "
                               f"(seed-to-seed sd {noise:.3g}, or under 1%): no trade-off to show")
        else:
            d = designs.drop(columns=[c for c in designs if c.endswith(":sd")]).sort_values(column).copy()
            d["pareto"] = pareto_mask(d.y.values, d[column].values, maximize, column in HIGHER_IS_CHEAPER)
            out[column] = d
    return out, skipped
