"""Findings as ranked, plain-language claims, each carrying its evidence.

Grades:
- high: p_holm < 0.01 with at least 3 seeds behind the comparison
- medium: p_holm < 0.05 and the interval excludes zero
- null: no level of the axis differs significantly (Holm), and every interval rules out effects larger than the
  smallest effect of interest (``min_effect``; by default the seed-to-seed noise, else a fifth of the largest
  finding); an interval that excludes 0 is named in the claim (a real effect, too small to matter)
- inconclusive: neither; the claim says what data would settle it
No claim is made without its effect, interval, n and p."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from lclab.analysis.effects import Effect, Interaction

GRADE_ORDER = {"high": 0, "medium": 1, "null": 2, "inconclusive": 3}


@dataclass
class Claim:
    text: str
    kind: str  # effect | null | interaction | inconclusive | noise
    grade: str
    axis: str
    effect: float = float("nan")
    ci: tuple[float, float] = (float("nan"), float("nan"))
    n: int = 0
    n_seeds: int = 0
    p_holm: float = float("nan")
    standardized: float = float("nan")  # |effect| / seed sd, the ranking key
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _p(p: float) -> str:
    return "p_holm < 0.001" if p < 1e-3 else f"p_holm = {p:.3f}"


def level_text(level) -> str:
    """A level as a reader reads it: a sampled float to 4 significant digits (0.00023, not 0.00023002760775222867)."""
    return f"{level:.4g}" if isinstance(level, float) else str(level)


def _level(axis: str, level) -> str:
    return f"{axis} = {level_text(level)}"


def _stratum_ok(est, p_holm: float, sign: float) -> bool:
    return p_holm < 0.05 and not est.covers_zero and np.sign(est.value) == sign


def _comparison(axis: str, level, reference, est, metric: str, maximize: bool, n_seeds: int, p_holm: float) -> str:
    better = (est.value > 0) == maximize
    verb = ("raises" if est.value > 0 else "lowers") + f" {metric}"
    evidence = f"{est.n} matched pairs over {n_seeds} seeds" if est.paired else \
        f"{est.n} unmatched trials over {n_seeds} seeds (no matched pair: other axes differ between the groups)"
    return (f"{_level(axis, level)} {verb} by {_fmt(abs(est.value))} against {_level(axis, reference)} "
            f"({'better' if better else 'worse'}; 95% CI {_fmt(est.lo)} to {_fmt(est.hi)}, {evidence}, {_p(p_holm)})")


def _grade(p_holm: float, n_seeds: int) -> str:
    return "high" if p_holm < 0.01 and n_seeds >= 3 else "medium"


def effect_claim(e: Effect, metric: str, maximize: bool, sd: float) -> Claim:
    est = e.estimate
    held = [str(lv) for (_, lv), (s, p) in e.strata.items() if _stratum_ok(s, p, np.sign(est.value))]
    failed = [str(lv) for (_, lv), _ in e.strata.items() if str(lv) not in held]
    scope = ""
    if e.strata:
        by = next(iter(e.strata))[0]
        scope = f"; it holds at {by} = {', '.join(held)}" if held else f"; no single {by} stratum confirms it alone"
        if held and failed:
            scope += f", not clearly at {', '.join(failed)}"
    text = _comparison(e.axis, e.level, e.reference, est, metric, maximize, e.n_seeds, e.p_holm) + scope + "."
    return Claim(text[0].upper() + text[1:], "effect", _grade(e.p_holm, e.n_seeds), e.axis, est.value, (est.lo, est.hi),
                 est.n, e.n_seeds, e.p_holm, abs(est.value) / sd if sd > 0 else float("nan"),
                 {"level": e.level, "reference": e.reference, "better": (est.value > 0) == maximize,
                  "strata": {str(lv): [s.value, s.lo, s.hi, p] for (_, lv), (s, p) in e.strata.items()}})


def stratum_claims(e: Effect, metric: str, maximize: bool, sd: float) -> list[Claim]:
    """An effect that does not hold on average but does within a stratum ("At ratio = 4, ...")."""
    out = []
    for (by, lv), (est, p) in e.strata.items():
        if p < 0.05 and not est.covers_zero:
            text = f"At {by} = {lv}, " + _comparison(e.axis, e.level, e.reference, est, metric, maximize, e.n_seeds, p) + \
                f"; averaged over {by} the effect is not significant ({_p(e.p_holm)})."
            out.append(Claim(text, "effect", _grade(p, e.n_seeds), e.axis, est.value, (est.lo, est.hi), est.n, e.n_seeds, p,
                             abs(est.value) / sd if sd > 0 else float("nan"),
                             {"level": e.level, "reference": e.reference, "stratum": {by: lv},
                              "better": (est.value > 0) == maximize}))
    return out


def axis_null_claim(axis: str, effects: list[Effect], metric: str, min_effect: float) -> Claim:
    bound = max(e.estimate.bound for e in effects)
    n = min(e.estimate.n for e in effects)
    seeds = min(e.n_seeds for e in effects)
    levels = ", ".join(str(e.level) for e in effects)
    ref = effects[0].reference
    if np.isfinite(bound) and np.isfinite(min_effect) and bound <= min_effect:
        support = f"at least {n} {'pairs' if effects[0].estimate.paired else 'trials'}, {seeds} seeds"
        real = [e for e in effects if not e.estimate.covers_zero]
        if not real:
            text = (f"No evidence that {axis} matters for {metric}: levels {levels} against {ref} all have "
                    f"|Δ| < {_fmt(bound)} (every 95% CI covers 0; {support}).")
        else:  # small but not nothing: say it, with the intervals that exclude 0
            shown = "; ".join(f"{_level(axis, e.level)}: {_fmt(e.estimate.value)} [{_fmt(e.estimate.lo)}, "
                              f"{_fmt(e.estimate.hi)}], {_p(e.p_holm)}" for e in real)
            text = (f"{axis} matters for {metric} by less than the smallest effect of interest {_fmt(min_effect)}: levels "
                    f"{levels} against {ref} all have |Δ| < {_fmt(bound)} ({support}). Some 95% CIs exclude 0, though no "
                    f"level is significant after Holm's correction: {shown}.")
        return Claim(text, "null", "null", axis, 0.0, (-bound, bound), n, seeds, min(e.p_holm for e in effects))
    why = (f"the intervals allow effects up to {_fmt(bound)}, more than the smallest effect of interest {_fmt(min_effect)}"
           if np.isfinite(bound) and np.isfinite(min_effect) else "there is not enough data for an interval or a noise estimate")
    text = (f"Inconclusive for {axis}: no level ({levels}) differs significantly from {ref}, but {why}; "
            f"more seeds or trials are needed before claiming either way.")
    # an inconclusive claim still carries its evidence: the largest difference measured, its interval and n
    top = max(effects, key=lambda e: abs(e.estimate.value) if np.isfinite(e.estimate.value) else -1)
    est = top.estimate
    return Claim(text, "inconclusive", "inconclusive", axis, est.value, (est.lo, est.hi), est.n, top.n_seeds,
                 top.p_holm, details={"level": top.level, "reference": top.reference,
                                      "levels": {str(e.level): {"effect": e.estimate.value, "ci": [e.estimate.lo, e.estimate.hi],
                                                                "n": e.estimate.n, "p_holm": e.p_holm} for e in effects}})


def interaction_claim(i: Interaction, metric: str) -> Claim:
    parts = {}
    for (lx, lz), est in i.simple.items():
        parts.setdefault(lx, []).append(f"{_fmt(est.value)} [{_fmt(est.lo)}, {_fmt(est.hi)}] at {i.z} = {lz}")
    simple = "; ".join(f"{_level(i.x, lx)} against {i.reference}: " + ", ".join(v) for lx, v in parts.items())
    text = (f"{i.x} and {i.z} interact on {metric} (F({i.df[0]}, {i.df[1]}) = {i.F:.3g}, {i.n} trials, {_p(i.p_holm)}): "
            f"the effect of {i.x} depends on {i.z}. {simple}.")
    return Claim(text, "interaction", _grade(i.p_holm, i.df[1]), f"{i.x} x {i.z}", i.spread, (float("nan"), float("nan")),
                 i.n, 0, i.p_holm, details={"F": i.F, "df": list(i.df),
                                            "simple_effects": {f"{lx} @ {lz}": [e.value, e.lo, e.hi] for (lx, lz), e in i.simple.items()}})


def principles(effects: list[Effect], inters: list[Interaction], metric: str, maximize: bool,
               seed_sd: float, min_effect: float | None = None) -> tuple[list[Claim], float]:
    """Ranked claims (significant effects by standardized size, then interactions, nulls, inconclusive)
    and the smallest effect of interest that was used for nulls."""
    found = [e for e in effects if e.significant]
    if min_effect is None:
        min_effect = seed_sd if np.isfinite(seed_sd) and seed_sd > 0 else \
            (0.2 * max(abs(e.estimate.value) for e in found) if found else float("nan"))
    claims = [effect_claim(e, metric, maximize, seed_sd) for e in found]
    local = [c for e in effects if not e.significant for c in stratum_claims(e, metric, maximize, seed_sd)]
    claims += local + [interaction_claim(i, metric) for i in inters if i.significant]
    for axis in dict.fromkeys(e.axis for e in effects):
        mine = [e for e in effects if e.axis == axis]
        if not any(e.significant for e in mine) and not any(c.axis == axis for c in local):
            claims.append(axis_null_claim(axis, mine, metric, min_effect))
    claims.sort(key=lambda c: (GRADE_ORDER[c.grade] if c.kind != "interaction" else 1.5,
                               -(c.standardized if np.isfinite(c.standardized) else abs(c.effect) if np.isfinite(c.effect) else 0)))
    return claims, min_effect
