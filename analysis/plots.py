"""Report figures as PNG bytes (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def effects(effects, metric: str) -> bytes:
    """Forest plot: every level against its axis's reference, with 95% intervals (significant ones filled), and
    beside each interval every matched difference it rests on (one small dot per cell and seed)."""
    labels = [f"{e.axis}: {e.level} vs {e.reference}" for e in effects]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(effects) + 1.2))
    y = np.arange(len(effects))[::-1]
    shown = False
    for yi, e in zip(y, effects):
        est = e.estimate
        ax.errorbar(est.value, yi, xerr=[[est.value - est.lo], [est.hi - est.value]] if np.isfinite(est.lo) else None,
                    fmt="o", color="C3" if e.significant else "C0", mfc="C3" if e.significant else "white", capsize=3)
        points = [d for ds in e.deltas.values() for d in ds]
        if points:
            ax.scatter(points, np.full(len(points), yi - 0.22), s=9, color="0.35", zorder=3,
                       label=None if shown else "matched difference (one per seed and cell)")
            shown = True
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"Δ {metric} (95% CI)")
    if shown:
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def seeds(table, metric: str) -> bytes:
    """Every configuration's seeds as points beside its mean: an outlier seed, or one that did not learn (✗), shows
    at a glance. `table`: rows (label, y, learned)."""
    labels = list(dict.fromkeys(table.label))
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(labels) + 1.3))
    y = {lab: i for i, lab in enumerate(labels[::-1])}
    ok, bad = table[table.learned], table[~table.learned]
    ax.scatter(ok.y, ok.label.map(y), color="C0", s=18, label="seed")
    if len(bad):
        ax.scatter(bad.y, bad.label.map(y), color="C3", marker="x", s=30, label="seed that did not learn")
    means = ok.groupby("label").y.mean()
    ax.scatter(means.values, means.index.map(y), marker="|", s=400, color="k", label="mean of the seeds that learned")
    ax.set_yticks(list(y.values()), list(y.keys()))
    ax.set_xlabel(metric)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def importance(table) -> bytes:
    evaluators = list(dict.fromkeys(table.evaluator))
    fig, axes = plt.subplots(1, len(evaluators), figsize=(4 * len(evaluators), 0.4 * table.axis.nunique() + 1.5), squeeze=False)
    for ax, name in zip(axes[0], evaluators):
        sub = table[table.evaluator == name].iloc[::-1]
        ax.barh(sub.axis, sub["mean"], xerr=[sub["mean"] - sub["min"], sub["max"] - sub["mean"]], capsize=3, color="C0")
        ax.set_title(f"{name} ({int(sub.repeats.max())} repeats, min-max)")
        ax.set_xlim(0, 1)
    return _png(fig)


def heatmap(means, counts, x: str, z: str, metric: str) -> bytes:
    fig, ax = plt.subplots(figsize=(1.3 * means.shape[1] + 2.5, 0.8 * means.shape[0] + 1.5))
    im = ax.imshow(means.values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(means.shape[1]), [str(c) for c in means.columns])
    ax.set_yticks(range(means.shape[0]), [str(i) for i in means.index])
    ax.set_xlabel(z)
    ax.set_ylabel(x)
    for i in range(means.shape[0]):
        for j in range(means.shape[1]):
            v = means.values[i, j]
            ax.text(j, i, f"{v:.3g}\nn={counts.values[i, j]}" if np.isfinite(v) else "—", ha="center", va="center",
                    color="white", fontsize=8)
    fig.colorbar(im, ax=ax, label=metric)
    return _png(fig)


def pareto(front, column: str, label: str, metric: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    dominated = front[~front.pareto]
    if len(dominated):  # a legend entry only for what is drawn
        ax.scatter(dominated[column], dominated.y, color="C0", label="dominated configurations")
    best = front[front.pareto].sort_values(column)
    ax.plot(best[column], best.y, "o-", color="C3", label="Pareto set")
    if front[column].min() > 0 and front[column].max() / front[column].min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.legend()
    return _png(fig)


def scaling(result, metric: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, f in enumerate(result.fits):
        rows = result.rows[result.rows.config == f.design]
        ax.scatter(rows.compute, rows.y, color=f"C{i % 10}", s=12)
        hi = max(rows.compute.max(), result.target or 0)
        grid = np.geomspace(rows.compute.min(), hi, 100)
        ax.plot(grid, f.predict(grid), color=f"C{i % 10}", label=f"{f.design[:50]}  α={f.alpha:.2f}")
    if result.target:
        ax.axvline(result.target, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    return _png(fig)
