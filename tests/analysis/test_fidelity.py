"""Fidelity of a synthetic proxy to its real-text twin, from planted studies whose orderings are known: a faithful
proxy is graded strong, one that reverses an axis is weak on that axis, one without a twin is unmeasured, and every
principle of a proxy that is not strong says so."""
import math

import pytest

from lclab.analysis.analyze import analyze
from lclab.analysis.fidelity import fidelity
from lclab.analysis.load import load
from lclab.testing import planted

LEVELS = {"pooling": ["mean", "attention"], "ratio": [4, 8, 16]}


def reversed_ratio(p: dict) -> float:
    """A proxy that gets pooling right and the compression ratio backwards."""
    return planted.true_value({**p, "ratio": 64 // p["ratio"]})


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fidelity')}/lab.db"
    planted.write_study(url, "text", sigma=0.01, seeds=3, levels=LEVELS, data_source="embedded")
    planted.write_study(url, "faithful", sigma=0.02, seeds=3, rng_seed=1, levels=LEVELS, data_source="synthetic",
                        fidelity_of="text", truth=lambda p: 3 * planted.true_value(p))  # another scale, same order
    planted.write_study(url, "backwards", sigma=0.02, seeds=3, rng_seed=2, levels=LEVELS, data_source="synthetic",
                        fidelity_of="text", truth=reversed_ratio)
    planted.write_study(url, "alone", sigma=0.02, seeds=3, rng_seed=3, levels=LEVELS, data_source="synthetic")
    return url


def test_a_faithful_proxy_is_strong_with_intervals_that_exclude_chance(lab):
    f = fidelity(load(lab), "faithful")
    assert f.grade == "strong" and f.target == "text" and f.n_configs == 6
    assert f.spearman > 0.9 and f.spearman_ci[0] > 0.5 and f.kendall_ci[0] > 0.5 and f.agree_ci[0] > 0.75
    assert set(f.by_axis) == {"pooling", "ratio"} and all(g.grade == "strong" for g in f.by_axis.values())
    claims = analyze(load(lab), "faithful").claims
    assert claims and not any("synthetic proxy" in c.text for c in claims)


def test_a_proxy_that_reverses_an_axis_is_weak_there_and_its_principles_say_so(lab):
    f = fidelity(load(lab), "backwards")
    assert f.grade == "weak" and f.by_axis["ratio"].grade == "weak" and f.by_axis["pooling"].grade == "strong"
    assert f.by_axis["ratio"].kendall == pytest.approx(-1.0)  # every ratio pair ordered the other way
    claims = analyze(load(lab), "backwards").claims
    assert claims and all("its fidelity to 'text' is weak" in c.text for c in claims)


def test_a_proxy_without_a_twin_is_unmeasured_and_every_principle_says_so(lab):
    f = fidelity(load(lab), "alone")
    assert f.grade == "unmeasured" and "fidelity_of" in f.why and math.isnan(f.spearman)
    claims = analyze(load(lab), "alone").claims
    assert claims and all("fidelity to real text is unmeasured" in c.text for c in claims)


def test_the_twin_is_read_with_its_proxy_and_a_real_text_study_needs_no_fidelity(lab):
    data = load(lab, ["faithful"])
    assert "text" in data.studies  # loaded for the proxy's fidelity, though not asked for
    assert analyze(data, "text").fidelity is None
    assert analyze(data, "faithful").fidelity.grade == "strong"


def test_the_report_shows_the_fidelity_per_axis_and_principles_json_carries_it(lab, tmp_path):
    import json

    from lclab.analysis.report import build

    paths = build(load(lab), ["backwards"], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Fidelity to real text" in text and "its fidelity to 'text' is weak" in text
    assert "Per axis, over the base configuration" in text
    fid = json.loads((tmp_path / "report" / "principles.json").read_text())["studies"]["backwards"]["fidelity"]
    assert fid["grade"] == "weak" and fid["by_axis"]["pooling"]["grade"] == "strong" and fid["n_configs"] == 6
    assert "chosen on a synthetic proxy: its fidelity to 'text' is weak" in paths["recipe"].read_text()


@pytest.mark.parametrize("seeds, resampled, grade", [(5, "jointly (5 shared seeds)", "strong"),
                                                     (3, "per configuration", "weak")])
def test_seeds_that_move_every_configuration_alike_are_resampled_jointly_from_five_shared_seeds(tmp_path, seeds,
                                                                                                 resampled, grade):
    """Real text at the lab's budget: each seed shifts every configuration by about as much as the designs differ,
    while the differences between configurations on the same seed are precise. Resampled per configuration, the
    twin's ordering looks like noise; resampled by seed, the paired design shows it (from 5 shared seeds; below that
    a joint bootstrap undercovers, so the per-configuration one stays)."""
    url = f"sqlite:///{tmp_path}/lab.db"
    planted.write_study(url, "text", sigma=0.002, seed_sigma=0.3, seeds=seeds, levels=LEVELS, data_source="embedded")
    planted.write_study(url, "proxy", sigma=0.002, seeds=seeds, rng_seed=1, levels=LEVELS, data_source="synthetic",
                        fidelity_of="text")
    f = fidelity(load(url), "proxy")
    assert f.bootstrap == (resampled, resampled) and f.kendall == pytest.approx(1.0)
    assert f.grade == grade
    assert f.to_dict()["bootstrap"] == {"proxy": resampled, "target": resampled}
