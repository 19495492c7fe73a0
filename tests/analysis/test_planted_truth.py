"""The analysis recovers a known generative model from a real Optuna storage, and declines to claim without evidence."""
import json
import itertools

import numpy as np
import optuna
import pandas as pd
import pytest

from lclab.analysis.analyze import analyze, scaling
from lclab.analysis.effects import axis_effects, seed_noise
from lclab.analysis.importance import ranking
from lclab.analysis.load import load
from lclab.analysis.stats import difference, holm
from lclab.testing import planted

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('planted')}/lab.db"
    planted.write_study(url, "planted", sigma=0.02, seeds=4)
    planted.write_study(url, "noisy", sigma=0.5, seeds=2, rng_seed=1)
    planted.write_scaling_study(url)
    planted.write_scaling_study(url, "three_budgets", budgets=(100, 400, 1600))
    return load(url)


def test_every_planted_effect_is_inside_its_interval_and_significant_where_real(lab):
    a = analyze(lab, "planted")
    truth = planted.planted_effects()
    got = {(e.axis, e.level): e for e in a.effects}
    assert set(got) == set(truth)
    for key, value in truth.items():
        est = got[key].estimate
        assert est.lo <= value <= est.hi, (key, value, est)
        assert got[key].significant == (value != 0), key
    assert all(e.estimate.paired and e.n_seeds == 4 for e in a.effects)


def test_claims_rank_the_real_effects_report_overlap_as_null_and_find_the_interaction(lab):
    a = analyze(lab, "planted")
    kinds = {(c.kind, c.axis) for c in a.claims}
    assert ("effect", "pooling") in kinds and ("effect", "ratio") in kinds
    assert ("null", "overlap") in kinds
    assert a.claims[0].axis == "pooling"  # the largest effect in seed-noise units comes first
    assert [i.p_holm < 0.05 for i in a.interactions if {i.x, i.z} == {"pooling", "ratio"}] == [True]
    assert all(i.p_holm > 0.05 for i in a.interactions if "overlap" in (i.x, i.z))
    inter = next(c for c in a.claims if c.kind == "interaction")
    assert inter.axis == "pooling x ratio" and "ratio = 16" in inter.text
    simple = next(i for i in a.interactions if {i.x, i.z} == {"pooling", "ratio"}).simple
    # attention helps most at 1:16, as planted (-0.16 there, -0.10 at 1:4 and 1:8)
    assert simple[("attention", 16)].value < min(simple[("attention", 4)].value, simple[("attention", 8)].value)
    null = next(c for c in a.claims if c.kind == "null")
    assert "overlap" in null.text and null.ci[1] <= a.min_effect
    for c in a.claims:  # no claim without its evidence
        assert c.n > 0 and np.isfinite(c.p_holm)


def test_the_literature_check_agrees_where_the_planted_truth_agrees_and_says_what_was_not_tested(lab):
    results = {c.finding.id: c.result for c in analyze(lab, "planted").literature}
    assert results.pop("overlap_gives_nothing") == "agree"  # planted: overlap does nothing
    assert set(results.values()) == {"not tested"}  # no memory/concat pooling, window, mask, adapter or size axis
    noisy = {c.finding.id: c.result for c in analyze(lab, "noisy").literature}
    assert noisy["overlap_gives_nothing"] == "inconclusive"  # 2 seeds at sd 0.5 cannot rule out an effect


def test_importance_ranks_the_axes_and_shows_its_spread(lab):
    a = analyze(lab, "planted")
    assert ranking(a.importance, "fanova")[-1] == "overlap"
    assert set(ranking(a.importance, "fanova")[:2]) == {"pooling", "ratio"}
    assert set(a.importance.evaluator) == {"fanova", "ped_anova"}
    assert (a.importance.repeats == 5).all() and (a.importance["max"] >= a.importance["min"]).all()


def test_seed_noise_is_estimated_from_replicates(lab):
    noise = analyze(lab, "planted").noise
    assert noise.configs == 12 and noise.dof == 36 and 0.012 < noise.pooled < 0.03  # planted sigma 0.02
    assert 0.012 < noise.robust < 0.03


def test_large_noise_and_few_seeds_decline_to_claim(lab):
    a = analyze(lab, "noisy")
    assert not [c for c in a.claims if c.kind in ("effect", "interaction")]
    assert {c.axis for c in a.claims if c.grade == "inconclusive"} == {"pooling", "ratio", "overlap"}


def _draw(rng, sigma=0.02, seeds=3) -> pd.DataFrame:
    rows = []
    for values in itertools.product(*planted.LEVELS.values()):
        p = dict(zip(planted.LEVELS, values))
        for seed in range(seeds):
            rows.append({**p, "seed": seed, "config": str(values), "number": len(rows),
                         "y": planted.true_value(p) + rng.normal(0, sigma)})
    return pd.DataFrame(rows)


def test_intervals_cover_the_planted_effects_at_close_to_the_nominal_rate():
    rng, truth, reps = np.random.default_rng(0), planted.planted_effects(), 300
    hits = {key: 0 for key in truth}
    for _ in range(reps):
        for e in axis_effects(_draw(rng), list(planted.LEVELS), planted.BASE, strata=False):
            hits[(e.axis, e.level)] += e.estimate.lo <= truth[(e.axis, e.level)] <= e.estimate.hi
    rates = {k: v / reps for k, v in hits.items()}
    assert all(0.88 <= r <= 0.99 for r in rates.values()), rates


def _ablation(rng, seeds: int, sigma: float = 0.02) -> pd.DataFrame:
    """What the ablation sampler produces: the base and one axis changed at a time, each once per seed."""
    points = [planted.BASE] + [{**planted.BASE, a: v} for a, vs in planted.LEVELS.items() for v in vs if v != planted.BASE[a]]
    return pd.DataFrame([{**p, "seed": s, "config": json.dumps(p, sort_keys=True),
                          "y": planted.true_value(p) + rng.normal(0, sigma)} for p in points for s in range(seeds)])


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_intervals_cover_with_one_matched_pair_per_seed(seeds):
    """The lab's ablations give one pair per seed; a bootstrap alone covered 61% at 2 seeds and 83% at 3."""
    rng, reps, hits, total = np.random.default_rng(seeds), 300, 0, 0
    truth = {(a, v): planted.true_value({**planted.BASE, a: v}) - planted.true_value(planted.BASE)
             for a, vs in planted.LEVELS.items() for v in vs if v != planted.BASE[a]}
    for _ in range(reps):
        for e in axis_effects(_ablation(rng, seeds), list(planted.LEVELS), planted.BASE, strata=False):
            assert e.estimate.n == seeds and e.estimate.paired  # one matched pair per seed, nothing pooled
            hits += e.estimate.lo <= truth[(e.axis, e.level)] <= e.estimate.hi
            total += 1
    assert 0.92 <= hits / total <= 0.985, hits / total


def test_holm_adjustment():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, float("nan")])[:3], [0.03, 0.06, 0.06])
    assert np.isnan(holm([0.01, float("nan")])[1])


def test_scaling_fit_recovers_the_planted_exponents(lab):
    result = scaling(lab, ["planted_scaling"], target_flops=1e14)
    fits = {f.design: f for f in result.fits}
    for pooling, alpha in planted.SCALING["alpha"].items():
        f = fits[f'{{"pooling": "{pooling}"}}']
        assert f.alpha_ci[0] <= alpha <= f.alpha_ci[1], (pooling, f.alpha_ci)
        assert f.r2 > 0.99 and not f.warnings
    row = result.predictions.set_index("design").loc['{"pooling": "mean"}']
    s = planted.SCALING
    true = s["E"] + s["A"] * (1e14 / s["c0"]) ** -s["alpha"]["mean"]
    assert row.lo <= true <= row.hi and "extrapolates" in row.warnings


def test_scaling_warns_when_the_fit_cannot_be_checked(lab):
    fits = scaling(lab, ["three_budgets"]).fits
    assert fits and all("only 3 budgets" in w for f in fits for w in f.warnings[:1])
    assert scaling(lab, ["planted"]).notes[0].startswith("No design was measured at 3 or more compute budgets")


def test_one_unstable_configuration_does_not_inflate_the_null_threshold():
    rng = np.random.default_rng(0)
    df = _draw(rng, sigma=0.02)
    unstable = df.config == df.config.iloc[0]
    df.loc[unstable, "y"] += rng.normal(0, 0.5, unstable.sum())  # one configuration's seeds scatter widely
    noise = seed_noise(df)
    assert noise.pooled > 0.05 and 0.012 < noise.robust < 0.03


def test_an_ablation_never_falls_back_to_an_unmatched_pool_that_flips_the_sign():
    """Attention pooling is planted 0.10 better; only seed 0 ran it. The pool of pooling = mean trials also holds the
    overlap = 16 variant, planted 0.30 better: against that pool attention would look worse."""
    base, rows = {"pooling": "mean", "overlap": 0}, []
    truth = lambda p: 2.0 - 0.10 * (p["pooling"] == "attention") - 0.30 * (p["overlap"] == 16)  # noqa: E731
    for seed in range(3):
        for p in (base, {**base, "overlap": 16}) + (({**base, "pooling": "attention"},) if seed == 0 else ()):
            rows.append({**p, "seed": seed, "config": json.dumps(p, sort_keys=True), "y": truth(p) + 0.001 * seed})
    df = pd.DataFrame(rows)
    pool = difference(df[df.pooling == "attention"].y, df[df.pooling == "mean"].y)
    assert pool.value > 0  # the unmatched pool flips the sign: what the old fallback reported
    for matched_only in (False, True):  # one matched pair is enough to never use the pool
        e = next(e for e in axis_effects(df, ["pooling", "overlap"], base, matched_only=matched_only) if e.axis == "pooling")
        assert e.estimate.paired and e.estimate.n == 1 and e.estimate.value == pytest.approx(-0.10)
        assert not e.significant  # one pair: no interval, no claim
    # attention run only on a seed whose base never ran: no matched pair at all, and in an ablation no estimate
    unmatched = pd.concat([df[df.pooling == "mean"], df[df.pooling == "attention"].assign(seed=9)])
    e = next(e for e in axis_effects(unmatched, ["pooling", "overlap"], base, matched_only=True) if e.axis == "pooling")
    assert e.estimate.n == 0 and np.isnan(e.estimate.value) and not e.significant
