"""Pruning on one objective of a multi-objective study (Optuna refuses trial.report there): lclab's bookkeeping
applies Optuna's own rules, a sweep with it completes, and what lclab cannot prune is refused at load."""
import copy
import math
from pathlib import Path

import optuna
import pytest
import yaml

from lclab.errors import ConfigError
from lclab.search_space.local import run_sweep
from lclab.search_space.pruning import Pruning
from lclab.search_space.space import load_space
from lclab.search_space.study import unfinished
from lclab.testing import MINI_BASE, mini_space

ROOT = Path(__file__).parents[2]
TWO = [{"metric": "val/loss_compressed"}, {"metric": "flops_per_token/encoder", "direction": "minimize"}]


def study_with_rungs(rung_values, maximize=False):
    study = optuna.create_study(directions=["maximize" if maximize else "minimize", "minimize"])
    for v in rung_values:
        study.add_trial(optuna.trial.create_trial(values=[v, 1.0], user_attrs={"rungs": {"0": v}}))
    return study


@pytest.mark.parametrize("maximize", [False, True])
def test_successive_halving_on_one_objective_keeps_the_best_fraction(tmp_path, maximize):
    space = load_space(mini_space(tmp_path, sampler="nsga2", objectives=[{**TWO[0], "direction": "maximize" if maximize
                                                                          else "minimize"}, TWO[1]],
                                  pruner={"name": "asha", "objective": 0, "min_resource": 10, "reduction_factor": 2}))
    pruning = Pruning(space)
    sign = -1 if maximize else 1
    for value, pruned in ((2.5, True), (1.5, False)):
        study = study_with_rungs([sign * 1.0, sign * 2.0, sign * 3.0], maximize)
        trial = study.ask()
        judge = pruning.judge(trial)
        assert judge({"val/loss_compressed": sign * value, "flops_per_token/encoder": 7.0}, 5) is None  # before the rung
        verdict = judge({"val/loss_compressed": sign * value, "flops_per_token/encoder": 7.0}, 10)
        # 4 values at rung 0, reduction 2: the best 2 go on (Optuna's rule); 2.5 is third, 1.5 second
        assert (verdict is not None) == pruned, verdict
        attrs = study.trials[-1].user_attrs
        assert attrs["rungs"] == {"0": sign * value} and attrs["intermediate"]["10"] == [sign * value, 7.0]
        assert ("pruned_at_tokens" in attrs) == pruned


def test_median_on_one_objective(tmp_path):
    space = load_space(mini_space(tmp_path, sampler="nsga2", objectives=TWO, pruner={"name": "median", "objective": 0}))
    study = optuna.create_study(directions=["minimize", "minimize"])
    for v in (1.0, 2.0, 3.0):
        study.add_trial(optuna.trial.create_trial(values=[v, 1.0], user_attrs={"intermediate": {"100": [v, 1.0]}}))
    judge = Pruning(space).judge(study.ask())
    assert judge({"val/loss_compressed": 1.5, "flops_per_token/encoder": 1.0}, 100) is None
    assert judge({"val/loss_compressed": 2.5, "flops_per_token/encoder": 1.0}, 100) is not None


def test_a_multi_objective_sweep_with_asha_runs_and_keeps_its_bookkeeping(tmp_path):
    space = load_space(mini_space(tmp_path, sampler="nsga2", seeds=[0], n_trials=4, budget={"steps": 8}, objectives=TWO,
                                  pruner={"name": "asha", "objective": 0, "min_resource": 1, "reduction_factor": 2}))
    study = run_sweep(space, tmp_path / "lab")
    states = [t.state.name for t in study.trials]
    assert "FAIL" not in states and set(states) <= {"COMPLETE", "PRUNED"} and unfinished(study, space) == ""
    trained = [t for t in study.trials if not {"infeasible", "duplicate_of"} & set(t.user_attrs)]  # duplicates: reused
    assert trained and all(len(v) == 2 for t in trained for v in t.user_attrs["intermediate"].values())
    assert all(t.user_attrs["rungs"] for t in trained)


@pytest.mark.parametrize("pruner,message", [
    ({"name": "hyperband"}, "pruner 'hyperband' cannot prune a study with 2 objectives"),
    ({"name": "asha", "objective": 2}, "2 is not the index of one of the 2 objectives"),
])
def test_what_the_lab_cannot_prune_is_refused_at_load(tmp_path, pruner, message):
    with pytest.raises(ConfigError, match=message):
        load_space(mini_space(tmp_path, sampler="nsga2", objectives=TWO, pruner=pruner))


def shrunk(preset: Path, folder: Path) -> Path:
    """The preset as written (axes, constraints, objectives, sampler, pruner), on a CPU-sized base: tiny widths, short
    sequences, a few steps, one seed, two sampled trials, a local database."""
    spec = yaml.safe_load(preset.read_text())
    base = yaml.safe_load((preset.parent / spec["base"]).read_text())
    small = copy.deepcopy(MINI_BASE)
    base["model"] = {**base["model"], "encoder": {**base["model"]["encoder"], **small["model"]["encoder"]},
                     "adapter": {**base["model"]["adapter"], **small["model"]["adapter"]},
                     # the tiny config's decoder: constraints relating the encoder to it stay satisfiable
                     "decoder": {**base["model"]["decoder"], "n_layers": 2, "d_model": 128, "n_heads": 4}}
    base["data"] = {**base["data"], "context_len": 64, "text_len": 16, "val_examples": 16, "tokenizer_vocab": 300}
    base["train"] = {**base["train"], "batch_size": 4, "decoder_init": "scratch", "checkpoint_every": 50}
    spec.update(base=base, budget={"steps": 3}, seeds=[0], n_trials=2, nuisance_trials=2)
    spec.pop("storage", None)
    if isinstance(spec.get("pruner"), dict) and spec["pruner"].get("min_resource"):
        spec["pruner"]["min_resource"] = 64  # a rung inside the shrunk budget
    path = folder / preset.name
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted((ROOT / "search_space" / "presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_preset_runs(tmp_path, preset):
    space = load_space(shrunk(preset, tmp_path))
    study = run_sweep(space, tmp_path / "lab", workers=2)
    states = [t.state.name for t in study.trials]
    assert "FAIL" not in states and states.count("COMPLETE") >= 1 and unfinished(study, space) == "", states
    assert math.isfinite(next(t for t in study.trials if t.state.name == "COMPLETE").values[0])
