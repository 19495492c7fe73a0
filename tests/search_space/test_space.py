import os
import subprocess
import sys
from pathlib import Path

import pytest

from lclab.trials import budget_steps
from lclab.search_space.space import SpaceError, load_space
from lclab.search_space.study import enumerated_points

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
BAD = sorted((HERE / "bad_spaces").glob("*.yaml"))


def expected(path: Path) -> list[str]:
    first = path.read_text().splitlines()[0]
    return [f.strip() for f in first.removeprefix("# expect:").split("|")]


def test_there_are_at_least_15_bad_spaces():
    assert len(BAD) >= 15


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_space_is_rejected_with_its_message(path):
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = info.value.render()
    assert str(path) in message and "Fix:" in message
    for fragment in expected(path):
        assert fragment in message, (fragment, message)


def test_bad_space_on_the_cli_is_one_paragraph_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "lclab", "sweep", str(HERE / "bad_spaces" / "unknown_pooling.yaml"),
                          "--lab", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "300"})
    assert out.returncode == 2 and "Traceback" not in out.stderr and "unknown pooling 'avg'" in out.stderr
    assert not (tmp_path / "lab.db").exists()  # nothing was created


@pytest.mark.parametrize("preset", sorted((ROOT / "search_space" / "presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_presets_load(preset):
    space = load_space(preset)
    assert space.axes and space.n_trials >= 1


def write(tmp_path, body: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(f"base: {ROOT / 'configs/trial/tiny.yaml'}\nobjectives: [{{metric: val/loss_compressed}}]\n" + body)
    return path


def test_conditionals_derived_values_and_constraints(tmp_path):
    space = load_space(write(tmp_path, """
name: cond
axes:
  pooling: {values: [mean, attention]}
  enc_heads: {path: model.encoder.n_heads, values: [2, 8], when: {pooling: attention}}
  decoder_width: {values: [128, 256]}
derived:
  encoder_width: {path: model.encoder.d_model, expr: "decoder_width // 2"}
constraints: ["encoder_params <= 0.5 * decoder_params"]
n_trials: 3
"""))
    points = space.grid()
    assert {"pooling": "mean", "decoder_width": 128} in points  # heads inactive without attention
    assert {"pooling": "attention", "enc_heads": 8, "decoder_width": 256} in points
    cfg = space.resolve({"pooling": "attention", "enc_heads": 8, "decoder_width": 256}, seed=3)
    assert cfg.model.encoder.d_model == 128 and cfg.model.encoder.n_heads == 8 and cfg.seed == 3


def test_ablation_table_is_every_level_of_every_axis_around_the_base_times_every_seed(tmp_path):
    space = load_space(write(tmp_path, """
name: abl
axes:
  pooling: {values: [mean, max, attention]}
  ratio: {values: [4, 8]}
  overlap: {values: [0, 4]}
sampler: ablation
seeds: [0, 1]
n_trials: 1
"""))
    table = enumerated_points(space)
    base = {"pooling": "mean", "ratio": 4, "overlap": 0}
    expected_points = [base, {**base, "pooling": "max"}, {**base, "pooling": "attention"}, {**base, "ratio": 8},
                       {**base, "overlap": 4}]
    assert table == [(p, s) for p in expected_points for s in (0, 1)]


def test_an_error_in_the_base_config_names_the_base_file_and_field(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  ratio: 4\ndata:\n  tokenizer: bytes\n")
    space = tmp_path / "space.yaml"
    space.write_text(f"name: s\nbase: {base}\nobjectives: [{{metric: val/loss_compressed}}]\nn_trials: 1\n"
                     "axes:\n  ratio: {values: [4, 16]}\n")
    with pytest.raises(SpaceError) as info:
        load_space(space)
    message = info.value.render()
    assert f"{base}:4" in message and "data.tokenizer" in message and "'bytes'" in message
    assert "axes" not in message and "level" not in message


def test_the_space_budget_replaces_the_base_budget(tmp_path):
    """A base with a token budget (configs/trial/small.yaml) and a space with steps: the space's steps decide."""
    base = tmp_path / "base.yaml"
    base.write_text((ROOT / "configs/trial/tiny.yaml").read_text().replace("  steps: 400", "  steps: 400\n  budget_tokens: 1.0e+9"))
    path = tmp_path / "space.yaml"
    path.write_text(f"name: b\nbase: {base}\naxes: {{ratio: {{values: [4, 8]}}}}\nobjectives: [{{metric: val/loss_compressed}}]\n"
                    "budget: {steps: 7}\nn_trials: 1\n")
    cfg = load_space(path).resolve({"ratio": 4})
    assert cfg.train.budget_tokens is None and budget_steps(cfg) == 7


def test_set_changes_the_base_of_every_trial_and_the_summary_names_the_data_and_the_twin():
    from lclab.search_space.study import space_summary

    proxy = load_space(ROOT / "search_space" / "presets" / "fidelity_kv_offset.yaml")
    assert all(proxy.resolve(p).data.tasks == ["kv_offset"] for p, _ in enumerated_points(proxy))
    summary = space_summary(proxy)
    assert (summary["data_source"], summary["fidelity_of"]) == ("synthetic", "fidelity_text")
    twin = load_space(ROOT / "search_space" / "presets" / "fidelity_text.yaml")
    assert space_summary(twin)["data_source"] == "embedded" and twin.resolve({}).data.source == "embedded"
    # the twins share their configurations, so that every one of them is matched
    assert enumerated_points(proxy) == enumerated_points(twin)
