"""The fidelity and literature tables of studies already run, as `lclab report` computes them, kept as a result.

    lclab sweep search_space/presets/fidelity_text.yaml --workers 2 --lab LAB   # and fidelity_reconstruction, _kv_offset
    lclab sweep search_space/presets/replication.yaml --workers 2 --lab LAB
    python benchmarks/study_tables.py --lab LAB --studies fidelity_reconstruction fidelity_kv_offset --name fidelity
    python benchmarks/study_tables.py --lab LAB --studies replication --name replication

Analyses the studies as `lclab report` does, then prints and writes, per study: its fidelity to
its real-text twin (overall and per axis: Spearman and Kendall with their intervals, the share of pairs ordered alike,
the grade, how seeds were resampled, each configuration's means and seeds on both sides) and each published finding
set beside the study's own matched result. The trials' own code version is recorded beside this checkout's commit.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from _common import report


def _ci(lo, hi) -> str:
    return "–" if lo is None else f"[{lo:.2f}, {hi:.2f}]"


def fidelity_rows(study: str, f: dict) -> list[list]:
    rows = []
    for axis, g in [("all", f), *f.get("by_axis", {}).items()]:
        if g["grade"] == "unmeasured":
            rows.append([study, axis, "unmeasured", g["n_configs"], "–", "–", "–", g["why"]])
            continue
        rows.append([study, axis, g["grade"], g["n_configs"],
                     "–" if g["spearman"] is None else f"{g['spearman']:.2f} {_ci(*g['spearman_ci'])}",
                     f"{g['kendall']:.2f} {_ci(*g['kendall_ci'])}", f"{g['agree']:.2f} {_ci(*g['agree_ci'])}",
                     f"proxy {g['bootstrap']['proxy']}, target {g['bootstrap']['target']}"])
    return rows


def literature_rows(study: str, findings: list[dict]) -> list[list]:
    return [[study, x["finding"], x["result"], "–" if x["effect"] is None else f"{x['effect']:+.4f} {_ci(x['lo'], x['hi'])}",
             x["n_seeds"], x["evidence"]] for x in findings]


def main() -> None:
    from lclab.analysis.analyze import analyze
    from lclab.analysis.load import load

    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", required=True, help="lab directory (its lab.db) or storage URL")
    ap.add_argument("--studies", nargs="+", required=True)
    ap.add_argument("--name", required=True)
    a = ap.parse_args()
    data = load(str(Path(a.lab) / "lab.db") if Path(a.lab).is_dir() else a.lab, a.studies)
    fid, lit, studies = [], [], {}
    for s in a.studies:
        result = analyze(data, s)
        f, findings = result.fidelity, [c.to_dict() for c in result.literature]
        if f is not None and f.target:  # a proxy with a declared twin
            fid += fidelity_rows(s, f.to_dict())
        lit += literature_rows(s, findings)
        commits = data.complete(s).get("code_version.commit", pd.Series(dtype=str)).dropna()
        studies[s] = {"fidelity": f.to_dict() if f else None,
                      "configurations": f.table.to_dict("records") if f is not None and f.table is not None else None,
                      "literature": findings, "trial_commits": sorted(set(commits)),
                      "claims": [c.text for c in result.claims]}
    extra = {"studies": studies, "command": " ".join(["python", *sys.argv])}
    if fid:
        report(a.name, ["proxy", "axis", "grade", "configurations", "Spearman [95% CI]", "Kendall [95% CI]",
                        "pairs ordered alike [95% CI]", "seeds resampled"], fid, {**extra, "literature_rows": lit})
    else:
        report(a.name, ["study", "published finding", "result here", "effect [95% CI]", "seeds", "evidence"], lit, extra)


if __name__ == "__main__":
    main()
