"""The literature as a check: published findings about LCLM design (`literature.yaml`, each with its source) beside
what a study measured on the same axis, with the study's own effect, interval and seeds. A result reads

- agree: the study's matched comparison says the same, significantly (or, for "same"/"null", its interval rules
  out any effect larger than the smallest effect of interest);
- disagree: it says the opposite, significantly;
- inconclusive: the axis was run but the interval cannot tell;
- not tested: the study has no such axis or no such levels.

A small proxy study that disagrees with a finding made at scale questions the proxy before the finding: the report
says so beside each disagreement."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from lclab.analysis.effects import Effect
from lclab.errors import ConfigError
from lclab.schema import from_dict

LITERATURE = Path(__file__).with_name("literature.yaml")


@dataclass
class Finding:
    id: str
    text: str
    source: str
    kind: Literal["better", "same", "grows", "null", "larger_than"]
    axis: str
    a: str | None = None
    b: str | None = None  # None with kind better: `a` beats every other level
    than: str | None = None


@dataclass
class Check:
    finding: Finding
    result: Literal["agree", "disagree", "inconclusive", "not tested"]
    evidence: str
    effect: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")
    n_seeds: int = 0
    # {configuration: {did_not_learn, seeds, which}} among the trials the verdict compares (set by `analyze`)
    did_not_learn: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        nums = {k: (None if not np.isfinite(v) else v) for k, v in
                {"effect": self.effect, "lo": self.lo, "hi": self.hi}.items()}
        return {"id": self.finding.id, "finding": self.finding.text, "source": self.finding.source,
                "result": self.result, "evidence": self.evidence, **nums, "n_seeds": self.n_seeds,
                "did_not_learn": self.did_not_learn}


def load_findings(path: Path = LITERATURE) -> list[Finding]:
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise ConfigError("findings", f"{path} holds no list of findings", "write findings: [- id: ..., text: ..., ...]",
                          str(path))
    return [from_dict(Finding, f, f"findings[{i}].") for i, f in enumerate(data["findings"])]


def check(findings: list[Finding], effects: list[Effect], maximize: bool, min_effect: float) -> list[Check]:
    """Each finding against a study's effects (`lclab.analysis.effects.axis_effects`: every level of an axis
    against its reference, matched on seed and the other axes)."""
    return [_check(f, [e for e in effects if e.axis == f.axis], effects, maximize, min_effect) for f in findings]


def _gain(e: Effect, maximize: bool) -> float:
    """How much better the effect's level is than its reference, in the objective's own direction."""
    return e.estimate.value if maximize else -e.estimate.value


def _oriented(e: Effect, maximize: bool) -> tuple[float, float, float]:
    """The gain of the effect's level over its reference and its 95% interval, positive meaning better."""
    sign = 1 if maximize else -1
    lo, hi = sorted((sign * e.estimate.lo, sign * e.estimate.hi))
    return sign * e.estimate.value, lo, hi


def _evidence(e: Effect, maximize: bool) -> str:
    gain, lo, hi = _oriented(e, maximize)
    return (f"{e.axis} = {e.level} vs {e.reference}: {gain:+.3g} (better is +; 95% CI {lo:+.3g} to {hi:+.3g}, "
            f"{e.estimate.n} {'pairs' if e.estimate.paired else 'trials'}, {e.n_seeds} seeds, p_holm = {e.p_holm:.3g})")


def _verdict(f: Finding, result: str, e: Effect, evidence: str, maximize: bool) -> Check:
    return Check(f, result, evidence, *_oriented(e, maximize), e.n_seeds)


def _pair(mine: list[Effect], a, b) -> tuple[Effect | None, int]:
    """The effect comparing levels a and b (either way round), and +1/-1 for whether its level is a."""
    for e in mine:
        if str(e.level) == str(a) and str(e.reference) == str(b):
            return e, 1
        if str(e.level) == str(b) and str(e.reference) == str(a):
            return e, -1
    return None, 0


def _check(f: Finding, mine: list[Effect], every: list[Effect], maximize: bool, min_effect: float) -> Check:
    if not mine:
        return Check(f, "not tested", f"the study has no scientific axis '{f.axis}' with two measured levels")
    if f.kind == "null":
        if any(e.significant for e in mine):
            top = max((e for e in mine if e.significant), key=lambda e: abs(e.estimate.value))
            return _verdict(f, "disagree", top, _evidence(top, maximize), maximize)
        bound = max(e.estimate.bound for e in mine)
        top = max(mine, key=lambda e: e.estimate.bound)
        if np.isfinite(min_effect) and bound <= min_effect:
            return _verdict(f, "agree", top, f"every level within ±{bound:.3g} of {top.reference} "
                                             f"(smallest effect of interest {min_effect:.3g})", maximize)
        return _verdict(f, "inconclusive", top, f"{_evidence(top, maximize)}; intervals allow up to ±{bound:.3g}", maximize)
    if f.kind == "grows":
        return _grows(f, mine, maximize)
    if f.kind == "larger_than":
        return _larger_than(f, mine, [e for e in every if e.axis == f.than], maximize)
    pairs = [_pair(mine, f.a, b) for b in ([f.b] if f.b else {str(e.level) for e in mine} | {str(e.reference) for e in mine})
             if str(b) != str(f.a)]
    pairs = [(e, s) for e, s in pairs if e is not None]
    if not pairs:
        return Check(f, "not tested", f"no matched comparison of {f.axis} = {f.a} with {f.b or 'another level'} in the study")
    if f.kind == "same":
        e, _ = pairs[0]
        if e.significant:
            return _verdict(f, "disagree", e, _evidence(e, maximize), maximize)
        if np.isfinite(min_effect) and e.estimate.bound <= min_effect:
            return _verdict(f, "agree", e, f"{_evidence(e, maximize)}; within the smallest effect of interest "
                                           f"{min_effect:.3g}", maximize)
        return _verdict(f, "inconclusive", e, _evidence(e, maximize), maximize)
    # better: `a` beats b (or every other level); each comparison's gain is counted from a's side
    wins = [e for e, s in pairs if e.significant and s * _gain(e, maximize) > 0]
    losses = [e for e, s in pairs if e.significant and s * _gain(e, maximize) < 0]
    if losses:
        return _verdict(f, "disagree", losses[0], _evidence(losses[0], maximize), maximize)
    if len(wins) == len(pairs):
        return _verdict(f, "agree", wins[0], "; ".join(_evidence(e, maximize) for e in wins), maximize)
    return _verdict(f, "inconclusive", pairs[0][0], "; ".join(_evidence(e, maximize) for e, _ in pairs), maximize)


def _grows(f: Finding, mine: list[Effect], maximize: bool) -> Check:
    """Larger is better: every significant comparison of two levels favours the larger one, and one exists."""
    try:
        direction = [(np.sign(float(e.level) - float(e.reference)), e) for e in mine]
    except (TypeError, ValueError):
        return Check(f, "not tested", f"the levels of {f.axis} are not numbers")
    up = [e for d, e in direction if e.significant and d * _gain(e, maximize) > 0]
    down = [e for d, e in direction if e.significant and d * _gain(e, maximize) < 0]
    if down:
        return _verdict(f, "disagree", down[0], _evidence(down[0], maximize), maximize)
    if up:
        return _verdict(f, "agree", up[0], "; ".join(_evidence(e, maximize) for e in up), maximize)
    top = max(mine, key=lambda e: abs(e.estimate.value))
    return _verdict(f, "inconclusive", top, _evidence(top, maximize), maximize)


def _larger_than(f: Finding, mine: list[Effect], theirs: list[Effect], maximize: bool) -> Check:
    """Axis `axis` matters more than axis `than`: its best level gains more over its reference than any level of the
    other, with 95% intervals that do not overlap. Gains, not magnitudes: a level that is much worse does not make
    an axis "matter more" in the sense of the finding (a larger decoder that helps more than a larger encoder)."""
    if not theirs:
        return Check(f, "not tested", f"the study has no scientific axis '{f.than}' with two measured levels")
    big = max(mine, key=lambda e: _gain(e, maximize))
    other = max(theirs, key=lambda e: _gain(e, maximize))
    (_, big_lo, big_hi), (_, other_lo, other_hi) = _oriented(big, maximize), _oriented(other, maximize)
    said = f"{_evidence(big, maximize)} against {_evidence(other, maximize)}"
    if big_lo > other_hi:
        return _verdict(f, "agree", big, said, maximize)
    if other_lo > big_hi:
        return _verdict(f, "disagree", other, said, maximize)
    return _verdict(f, "inconclusive", big, said, maximize)
