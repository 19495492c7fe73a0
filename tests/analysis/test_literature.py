"""Published findings against a study's measured effects (lclab.analysis.literature): each verdict from hand-made
effects whose answer is known, in both objective directions."""
import pytest

from lclab.analysis.effects import Effect
from lclab.analysis.literature import Finding, check, load_findings
from lclab.analysis.stats import Estimate


def effect(axis, level, reference, value, lo, hi, p_holm, seeds=3):
    return Effect(axis, level, reference, Estimate(value, lo, hi, p_holm, seeds, True), seeds, p_holm)


def verdict(finding, effects, maximize=True, min_effect=0.01):
    [c] = check([finding], effects, maximize, min_effect)
    return c


def test_the_shipped_findings_parse_with_their_sources():
    findings = load_findings()
    assert len(findings) == 7 and all("2606.09659" in f.source for f in findings)
    assert {f.kind for f in findings} == {"better", "same", "grows", "null", "larger_than"}


@pytest.mark.parametrize("maximize", [True, False])
def test_a_better_finding_agrees_disagrees_or_cannot_tell_in_either_objective_direction(maximize):
    mean_over_memory = Finding("m", "mean beats memory", "paper", "better", "pooling", a="mean", b="memory")
    s = 1 if maximize else -1  # the objective's direction: accuracy up, or loss down
    # the study's effect is memory against the base, mean: memory worse, significantly
    c = verdict(mean_over_memory, [effect("pooling", "memory", "mean", -0.05 * s, *sorted((-0.08 * s, -0.02 * s)), 0.001)],
                maximize)
    assert c.result == "agree" and c.effect == pytest.approx(-0.05) and c.hi < 0  # the gain of memory, negative
    c = verdict(mean_over_memory, [effect("pooling", "memory", "mean", 0.05 * s, *sorted((0.02 * s, 0.08 * s)), 0.001)],
                maximize)
    assert c.result == "disagree"
    c = verdict(mean_over_memory, [effect("pooling", "memory", "mean", -0.01 * s, *sorted((-0.04 * s, 0.02 * s)), 0.4)],
                maximize)
    assert c.result == "inconclusive" and "p_holm = 0.4" in c.evidence


def test_a_finding_on_an_axis_or_level_the_study_never_ran_is_not_tested():
    finding = Finding("c", "causal beats bidirectional", "paper", "better", "mask", a="causal", b="bidirectional")
    assert verdict(finding, [effect("pooling", "memory", "mean", 0.1, 0.05, 0.15, 0.001)]).result == "not tested"
    concat = Finding("s", "concat about mean", "paper", "same", "pooling", a="concat", b="mean")
    assert verdict(concat, [effect("pooling", "memory", "mean", 0.1, 0.05, 0.15, 0.001)]).result == "not tested"


def test_same_and_null_agree_only_when_the_interval_rules_out_the_smallest_effect_of_interest():
    concat = Finding("s", "concat about mean", "paper", "same", "pooling", a="concat", b="mean")
    assert verdict(concat, [effect("pooling", "concat", "mean", 0.001, -0.004, 0.006, 0.8)], min_effect=0.01).result == "agree"
    assert verdict(concat, [effect("pooling", "concat", "mean", 0.001, -0.03, 0.03, 0.8)], min_effect=0.01).result == "inconclusive"
    assert verdict(concat, [effect("pooling", "concat", "mean", -0.05, -0.07, -0.03, 0.001)]).result == "disagree"
    overlap = Finding("o", "overlap gives nothing", "paper", "null", "overlap")
    quiet = [effect("overlap", 8, 0, 0.002, -0.005, 0.008, 0.9), effect("overlap", 16, 0, -0.001, -0.006, 0.004, 0.9)]
    assert verdict(overlap, quiet, min_effect=0.01).result == "agree"
    assert verdict(overlap, quiet, min_effect=0.005).result == "inconclusive"
    assert verdict(overlap, quiet + [effect("overlap", 32, 0, 0.04, 0.02, 0.06, 0.002)]).result == "disagree"


def test_grows_reads_each_comparison_by_which_level_is_larger():
    windows = Finding("w", "larger windows help", "paper", "grows", "window")
    # the base is 16: 4 is worse than it (larger better), 64 is better (larger better)
    helps = [effect("window", 4, 16, -0.06, -0.09, -0.03, 0.001), effect("window", 64, 16, 0.03, 0.01, 0.05, 0.01)]
    assert verdict(windows, helps).result == "agree"
    hurts = [effect("window", 4, 16, 0.06, 0.03, 0.09, 0.001)]  # the smaller window is better
    assert verdict(windows, hurts).result == "disagree"
    assert verdict(windows, hurts, maximize=False).result == "agree"  # on a loss, a higher value of the smaller is worse


def test_larger_than_needs_intervals_that_separate_the_two_axes():
    decoder = Finding("d", "decoder size matters more", "paper", "larger_than", "decoder_layers", than="encoder_layers")
    dec = effect("decoder_layers", 4, 2, 0.10, 0.07, 0.13, 0.001)
    assert verdict(decoder, [dec, effect("encoder_layers", 4, 2, 0.01, -0.02, 0.04, 0.5)]).result == "agree"
    assert verdict(decoder, [dec, effect("encoder_layers", 4, 2, 0.08, 0.05, 0.11, 0.001)]).result == "inconclusive"
    assert verdict(decoder, [effect("decoder_layers", 4, 2, 0.0, -0.01, 0.01, 0.9),
                             effect("encoder_layers", 4, 2, 0.08, 0.05, 0.11, 0.001)]).result == "disagree"
    assert verdict(decoder, [dec]).result == "not tested"


def test_larger_than_counts_gains_not_magnitudes():
    """A larger decoder far worse than the base (as a 4-layer decoder is with the tiny recipe) does not make decoder
    size "matter more" than an encoder whose larger size helps: replication_skip_0.2.json once read so as "agree"."""
    decoder = Finding("d", "decoder size matters more", "paper", "larger_than", "decoder_layers", than="encoder_layers")
    worse = effect("decoder_layers", 4, 2, -0.15, -0.226, -0.075, 0.05)
    helps = effect("encoder_layers", 4, 2, 0.065, 0.058, 0.071, 0.001)
    assert verdict(decoder, [worse, helps]).result == "disagree"
    # on a loss the same numbers mean the larger decoder lowers the loss most: agree
    assert verdict(decoder, [worse, effect("encoder_layers", 4, 2, -0.065, -0.071, -0.058, 0.001)], maximize=False).result == "agree"
