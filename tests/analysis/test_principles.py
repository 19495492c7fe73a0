"""A null claim states only what its intervals show: 'every 95% CI covers 0' only when each does."""
from lclab.analysis.effects import Effect
from lclab.analysis.principles import principles
from lclab.analysis.stats import Estimate


def effect(level, value, lo, hi, p_holm):
    return Effect("ratio", level, 4, Estimate(value, lo, hi, p=p_holm / 2, n=5, paired=True), n_seeds=5, p_holm=p_holm)


def test_an_effect_below_the_smallest_of_interest_whose_interval_excludes_zero_is_named_not_denied():
    # fidelity_text at 5 seeds: ratio 16 costs +0.0044 nats [0.0014, 0.0074], p_holm 0.059, seed sd 0.0077
    claims, _ = principles([effect(8, 0.0026, 0.0007, 0.0045, 0.059), effect(16, 0.0044, 0.0014, 0.0074, 0.059)],
                           [], "val/loss_compressed", maximize=False, seed_sd=0.0077)
    (c,) = claims
    assert c.grade == "null" and "covers 0" not in c.text
    assert "less than the smallest effect of interest 0.0077" in c.text and "ratio = 16: 0.0044 [0.0014, 0.0074]" in c.text


def test_a_null_whose_intervals_all_cover_zero_says_so():
    claims, _ = principles([effect(8, 0.001, -0.002, 0.004, 0.5), effect(16, -0.001, -0.004, 0.002, 0.5)],
                           [], "val/loss_compressed", maximize=False, seed_sd=0.0077)
    (c,) = claims
    assert c.grade == "null" and "every 95% CI covers 0" in c.text and "No evidence that ratio matters" in c.text


def test_a_sampled_numeric_axis_is_cut_into_thirds_named_by_the_values_they_hold(tmp_path):
    """A log-uniform lr over 12 configurations: its levels were qcut's interval strings, whose first edge was
    negative ('(-0.000899, 0.000411]', a learning rate no trial had) and whose order was the strings'."""
    import json

    import numpy as np
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from lclab.analysis.effects import levels, scored
    from lclab.analysis.load import load

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    study = optuna.create_study(study_name="lr", storage=url)
    study.set_user_attr("space", {"axes": {"lr": "scientific", "ratio": "scientific"}, "sampler": "tpe",
                                  "objectives": [{"metric": "val/loss_compressed", "direction": "minimize"}]})
    lrs = [float(v) for v in 10 ** np.linspace(-4, -2.4, 12)]
    study.add_trials([optuna.trial.create_trial(
        params={"lr": lr, "ratio": 4}, value=1.0 + lr,
        distributions={"lr": FloatDistribution(1e-4, 1e-2, log=True), "ratio": CategoricalDistribution([4, 8])},
        user_attrs={"seed": 0, "scientific_key": json.dumps({"lr": lr, "ratio": 4})}) for lr in lrs])
    df = scored(load(url), "lr")
    thirds = levels(df, "lr")
    assert thirds == [f"{i + 1}/3: {lo:.3g} to {hi:.3g}" for i, (lo, hi) in
                      enumerate([(lrs[0], lrs[3]), (lrs[4], lrs[7]), (lrs[8], lrs[11])])], thirds
    assert (df.groupby("lr").size() == 4).all()
