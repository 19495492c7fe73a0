"""`lclab report` end to end on real storages: files, provenance, recipe, partial studies and bad input."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from lclab.search_space.space import load_space
from lclab.search_space.local import run_sweep
from lclab.testing import planted
from lclab.testing import mini_space
from lclab.trials import load_config

ROOT = Path(__file__).parents[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def lclab(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "250"})


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "lab.db"
    url = f"sqlite:///{path}"
    planted.write_study(url, "planted", failed=2)
    planted.write_scaling_study(url)
    optuna.create_study(study_name="empty", storage=url)
    planted.write_failed_study(url)
    running = planted.write_study(url, "partial", seeds=2)
    running.ask()  # a trial still running
    return path


@pytest.fixture(scope="module")
def report_dir(planted_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "planted"
    r = lclab("report", "planted", "planted_scaling", "--storage", planted_db, "-o", out, "--target-flops", "1e14")
    assert r.returncode == 0, r.stderr
    return out


def test_report_writes_html_markdown_principles_and_recipe(report_dir):
    html = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    for section in ("Overview", "principles", "The literature", "overlapping windows give nothing", "Importance",
                    "Per-axis effects", "Interactions", "Cost and Pareto", "Recipe", "Iso-compute and scaling",
                    "Appendix: all trials"):
        assert section in html and section in md, section
    assert "http://" not in html and "https://" not in html  # self-contained: opens without a network
    images = re.findall(r'src="data:image/png;base64,', html)
    md_images = re.findall(r"!\[[^]]*\]\((images/[^)]+)\)", md)
    assert len(images) == len(md_images) >= 8
    assert all((report_dir / p).stat().st_size > 1000 for p in md_images)
    assert "code version: planted" in md and "storage: sqlite:///" in md and "data fingerprint: planted" in md
    principles = json.loads((report_dir / "principles.json").read_text())
    claims = principles["studies"]["planted"]["claims"]
    assert claims[0]["axis"] == "pooling" and claims[0]["grade"] == "high" and claims[0]["ci"][0] < claims[0]["effect"]
    assert any(c["kind"] == "null" and c["axis"] == "overlap" for c in claims)
    literature = {c["id"]: c for c in principles["studies"]["planted"]["literature"]}
    assert literature["overlap_gives_nothing"]["result"] == "agree" and "2606.09659" in literature["overlap_gives_nothing"]["source"]
    assert {s["design"] for s in principles["scaling"]} == {'{"pooling": "attention"}', '{"pooling": "mean"}'}


def test_the_recipe_is_a_trial_config_lclab_trains(report_dir, tmp_path):
    recipe = report_dir / "recipe.yaml"
    text = recipe.read_text()
    assert "pooling = attention (decided)" in text and "overlap" in text
    cfg = load_config(recipe)
    assert cfg.model.pooling == "attention" and cfg.model.ratio == 4  # the planted optimum
    per_ratio = sorted(p.name for p in report_dir.glob("recipe_planted_r*.yaml"))
    assert per_ratio == ["recipe_planted_r16.yaml", "recipe_planted_r4.yaml", "recipe_planted_r8.yaml"]
    assert yaml.safe_load((report_dir / "recipe_planted_r16.yaml").read_text())["model"]["ratio"] == 16
    r = lclab("train", recipe, "--set", "train.steps=2", "--set", "train.decoder_init=scratch",
              "--set", "data.val_examples=32", "--output-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.glob("recipe_planted_r4-*/metrics.json"))


def test_a_partial_study_is_reported_with_what_is_missing(planted_db, tmp_path):
    r = lclab("report", "partial", "--storage", planted_db, "-o", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "p" / "report.md").read_text()
    assert "1 trials are still running" in md
    assert "No design was measured at 3 or more compute budgets" in md


@pytest.mark.parametrize("args,message", [
    (["empty"], "study 'empty'"),
    (["all_failed"], "none completed; failure reasons: loss diverged (nan) at step 12. Fix: look at the failed trials' "
                     "logs (lclab trials all_failed --where"),
    (["nope"], "no study named 'nope'"),
    (["planted", "--objective", "3"], "has 1 objective(s) (val/loss_compressed)"),
    (["planted", "--storage", "/nonexistent/lab.db"], "no trial database at /nonexistent/lab.db"),
    (["planted", "--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open the trial database"),
])
def test_bad_input_is_one_clear_message(planted_db, tmp_path, args, message):
    storage = [] if "--storage" in args else ["--storage", planted_db]
    r = lclab("report", *args, *storage, "-o", tmp_path / "x")
    assert r.returncode == 2
    assert message in " ".join(r.stderr.split()) and "Traceback" not in r.stderr
    assert not Path("/nonexistent/lab.db").exists()


def test_report_on_a_real_sweep(tmp_path):
    run_sweep(load_space(mini_space(tmp_path, budget={"steps": 4})), tmp_path / "lab")
    # 4 steps are too few to learn anything: the report says so and recommends nothing ...
    r = lclab("report", "mini", "--lab", tmp_path / "lab", "-o", tmp_path / "unlearned")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "unlearned" / "report.md").read_text()
    assert "No scored trial learned" in md
    # what was run is described whether or not it learned: 4 configurations, both axes' levels, 2 seeds each
    assert "| mini | val/loss_compressed (min) | grid | {\"steps\": 4} | 8 | 0 | 0 | 0 | 0 | 0 | 4 |" in md, md
    assert "| pooling | scientific | attention, mean |" in md and "| ratio | scientific | 4, 8 |" in md
    hours = float(re.search(r"\| mini \|(?:[^|]*\|){11} ([^|]+) \|", md).group(1))
    assert 0 < hours < 0.1  # 8 trials of seconds: was rounded to 0 trial hours
    assert "(no configuration has two seeds that learned)" in md and "run with more than one seed" not in md
    assert not (tmp_path / "unlearned" / "recipe.yaml").exists()
    # ... unless asked to analyse them anyway
    r = lclab("report", "mini", "--lab", tmp_path / "lab", "-o", tmp_path / "rep", "--include-unlearned")
    assert r.returncode == 0, r.stderr
    principles = json.loads((tmp_path / "rep" / "principles.json").read_text())["studies"]["mini"]
    assert principles["metric"] == "val/loss_compressed" and principles["seed_sd_dof"] == 4  # 4 configs x 2 seeds
    assert principles["claims"] and all(c["n"] > 0 for c in principles["claims"])
    cfg = load_config(tmp_path / "rep" / "recipe.yaml")
    assert cfg.model.ratio in (4, 8) and cfg.model.pooling in ("mean", "attention")


def test_a_multi_objective_sweep_over_a_sampled_float_names_its_other_objectives_and_readable_levels(tmp_path):
    axes = {"ratio": {"values": [4, 8]}, "lr": {"path": "train.lr_decoder", "low": 1e-4, "high": 1e-2, "log": True}}
    objectives = [{"metric": "val/loss_compressed"}, {"metric": "flops_per_token/total", "direction": "minimize"}]
    run_sweep(load_space(mini_space(tmp_path, axes=axes, objectives=objectives, sampler="nsga2", seeds=[0],
                                    budget={"steps": 2})), tmp_path / "lab")
    for objective, shown, other in ((0, "val/loss_compressed (min)", "--objective 1: flops_per_token/total (min)"),
                                    (1, "flops_per_token/total (min)", "--objective 0: val/loss_compressed (min)")):
        r = lclab("report", "mini", "--lab", tmp_path / "lab", "-o", tmp_path / f"r{objective}", "--objective", objective)
        assert r.returncode == 0, r.stderr
        md = (tmp_path / f"r{objective}" / "report.md").read_text()
        # the overview said only the analysed objective, as if the study had no other
        assert f"| mini | {shown}; the study's other objectives: {other} | nsga2 |" in md, md
    levels = re.search(r"\| lr \| scientific \| ([^|]+) \|", md).group(1).split(", ")
    assert len(levels) == 4 and all(len(level) <= 9 for level in levels), levels  # 4 significant digits, not 17
    assert [float(v) for v in levels] == sorted(float(v) for v in levels)


def test_a_plain_optuna_study_gets_a_report_without_a_recipe(tmp_path):
    """A study lclab did not make (e.g. a Hydra Optuna sweep): no configs, no seeds; its parameters and values still
    give importance and effects, and the report says why there is no recipe."""
    study = optuna.create_study(study_name="hydra", storage=f"sqlite:///{tmp_path}/lab.db")
    for i in range(24):
        opt, width = ("adam", "sgd")[i % 2], (64, 128, 256)[i % 3]
        study.add_trial(optuna.trial.create_trial(
            params={"opt": opt, "width": width}, value=(0.5 if opt == "adam" else 0.8) + 0.001 * (i % 5),
            distributions={"opt": optuna.distributions.CategoricalDistribution(["adam", "sgd"]),
                           "width": optuna.distributions.CategoricalDistribution([64, 128, 256])}))
    r = lclab("report", "hydra", "-o", tmp_path / "report", "--lab", tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "not made by lclab" in md and "No recipe: the trials store no trial config" in md
    assert "opt" in md and "width" in md and not (tmp_path / "report" / "recipe.yaml").exists()
