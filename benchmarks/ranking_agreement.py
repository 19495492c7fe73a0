"""Which short recipe ranks designs like longer training? Reads results of `measurability.py` (trains nothing): a
target (the same designs trained longer, say) and proxies (short recipes), each a set of result files made with one
set of overrides. Over the designs every side ran, it prints per pair of designs the target's paired difference with
its 95% interval and each proxy's, and per proxy how alike it orders the designs: Spearman, Kendall and the share of
pairs ordered alike with bootstrap intervals over seeds (`lclab.analysis.fidelity.orderings`, the report's own
fidelity measure), the pairs it orders like the target, and those the target settles (interval clear of zero).

    python benchmarks/ranking_agreement.py --target results/LONG.json ... \
        --proxy none=results/A.json,results/B.json --proxy curriculum=results/C.json [--designs tiny model.pooling=last]

Only seeds that learned count; a pair's differences use the seeds both designs learned on, and a pair without such
a seed on some side is left out of the counts.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pandas as pd

from _common import report
from lclab.analysis.fidelity import orderings
from lclab.analysis.stats import paired_effect


def load(paths: list[str], task: str) -> dict[str, dict[int, float]]:
    """design -> seed -> accuracy of the runs that learned, from result files made with the same overrides."""
    acc: dict[str, dict[int, float]] = {}
    settings = set()
    for path in paths:
        data = json.loads(Path(path).read_text())
        settings.add((tuple(data.get("overrides") or []), data.get("threads")))
        for r in data["runs"]:
            if r["task"] != task or not r["learned"]:
                continue
            seen = acc.setdefault(r["design"], {}).setdefault(r["seed"], r["acc"])
            if seen != r["acc"]:
                raise SystemExit(f"{path}: {r['design']} seed {r['seed']} has accuracy {r['acc']}, another file "
                                 f"{seen}: these files were not made by the same trial code; pass one of them")
    if len(settings) > 1:
        raise SystemExit(f"{', '.join(paths)}: made with different (overrides, threads): {sorted(settings)}; "
                         "one side is one recipe")
    return acc


def paired(acc: dict[str, dict[int, float]], a: str, b: str):
    seeds = sorted(set(acc[a]) & set(acc[b]))
    return paired_effect([acc[a][s] - acc[b][s] for s in seeds])


def _ci(e) -> str:
    return f"{e.value:+.3f} [{e.lo:+.3f}, {e.hi:+.3f}] ({e.n})"


def _short(design: str) -> str:
    return design.split("=")[-1]


def _frames(acc: dict[str, dict[int, float]], designs: list[str]) -> list[pd.DataFrame]:
    """Each design's runs as `orderings` takes them: columns seed and good."""
    return [pd.DataFrame({"seed": list(acc[d]), "good": list(acc[d].values())}) for d in designs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", nargs="+", required=True, help="result files of the recipe to agree with")
    ap.add_argument("--proxy", action="append", required=True, help="NAME=FILE[,FILE...]: one short recipe")
    ap.add_argument("--designs", nargs="*", help="compare only these designs (default: every design all sides ran)")
    ap.add_argument("--task", default="reconstruction")
    ap.add_argument("--name", default="ranking_agreement")
    a = ap.parse_args()
    if bad := [p for p in a.proxy if "=" not in p]:
        raise SystemExit(f"--proxy {bad[0]}: give NAME=FILE[,FILE...], e.g. --proxy none=results/A.json,results/B.json")
    files = {name: spec.split(",") for name, spec in (p.split("=", 1) for p in a.proxy)}
    target = load(a.target, a.task)
    proxies = {name: load(paths, a.task) for name, paths in files.items()}
    designs = a.designs or sorted(set(target).intersection(*proxies.values()))
    missing = [d for d in designs if d not in target or any(d not in p for p in proxies.values())]
    if len(designs) < 2 or missing:
        raise SystemExit(f"designs {missing or designs}: not learned on some side; at least two are needed")

    pair_rows, settles = [], []
    alike: dict[str, list[bool | None]] = {name: [] for name in proxies}
    for x, y in itertools.combinations(designs, 2):
        t = paired(target, x, y)
        settles.append(t.n >= 2 and not t.covers_zero)
        row = [f"{_short(x)} − {_short(y)}", _ci(t), settles[-1]]
        for name, p in proxies.items():
            e = paired(p, x, y)
            # a pair with no seed both designs learned on has no direction to agree with
            alike[name].append((e.value > 0) == (t.value > 0) if min(e.n, t.n) else None)
            row += [_ci(e), alike[name][-1]]
        pair_rows.append(row)

    summary_rows = []
    for name, p in proxies.items():
        (rho, tau, agree), ci, how = orderings(_frames(p, designs), _frames(target, designs))
        counted = [ok for ok in alike[name] if ok is not None]
        settled = [ok for ok, s in zip(alike[name], settles) if s and ok is not None]
        summary_rows.append([name, len(designs), f"{rho:.2f} [{ci[0][0]:.2f}, {ci[0][1]:.2f}]",
                             f"{tau:.2f} [{ci[1][0]:.2f}, {ci[1][1]:.2f}]", f"{agree:.2f} [{ci[2][0]:.2f}, {ci[2][1]:.2f}]",
                             f"{sum(counted)}/{len(counted)}", f"{sum(settled)}/{len(settled)}", f"proxy {how[0]}, target {how[1]}"])
    report(f"{a.name}_pairs", ["pair", "target Δ acc [95%] (pairs)", "target settles",
                               *itertools.chain.from_iterable((f"{n} Δ [95%] (pairs)", f"{n} alike") for n in proxies)],
           pair_rows)
    report(a.name, ["proxy", "designs", "Spearman [95%]", "Kendall [95%]", "pairs alike [95%]", "pairs alike",
                    "settled pairs alike", "seeds resampled"], summary_rows,
           {"target": a.target, "proxies": files, "designs": designs, "task": a.task,
            "means": {side: {d: sum(acc[d].values()) / len(acc[d]) for d in designs}
                      for side, acc in {"target": target, **proxies}.items()}})


if __name__ == "__main__":
    main()
