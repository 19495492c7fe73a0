"""The `lclab` command as a user runs it: bad input gives one clear paragraph, exit 2, no traceback."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
TINY = ROOT / "configs" / "trial" / "tiny.yaml"
FAST = ["--set", "train.steps=3", "--set", "train.warm_steps=3", "--set", "data.val_examples=8", "--set", "progress=false"]


def lclab(*args, cwd=None):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "lclab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


def write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD = [
    ("model:\n  pooling: [mean\n", ["malformed YAML", "line"]),
    ("model:\n  poolng: mean\n", ["model.poolng", "did you mean 'pooling'"]),
    ("model:\n  pooling: avg\n", ["model.pooling", "unknown pooling 'avg'", "mean"]),
    ("model:\n  ratio: 8\n  encoder: {window: 20, overlap: 0}\n", ["model.encoder.window", "not divisible by ratio 8"]),
    ("model:\n  encoder: {window: 16, overlap: 16}\n", ["model.encoder.overlap", "overlap < window"]),
    ("model:\n  ratio: eight\n", ["model.ratio", "'eight' is not int"]),
    ("data:\n  tokenizer: bytes\n", ["data.tokenizer", "'bytes' is not one of 'bpe', 'byte'", "did you mean 'byte'?"]),
    ("data:\n  source: files\n  path: [/nonexistent/corpus.txt]\n", ["data.path", "not found", "/nonexistent/corpus.txt"]),
    ("data:\n  tasks: [passkey]\n", ["data.tasks", "unknown synthetic task 'passkey'"]),
    ("train:\n  steps: 0\n", ["train.steps", "budgets must be positive"]),
    ("train:\n  budget_tokens: 1.0e+6\n  budget_flops: 1.0e+12\n", ["train.budget_flops", "both a token and a FLOP budget"]),
    ("model:\n  attention: flash9\n", ["model.attention", "unknown attention backend"]),
    ("model:\n  pooling: mean\n  pooling_options: {temperature: 2}\n",
     ["model.pooling_options.temperature", "remove it: model.pooling_options takes no fields"]),
    *([("model:\n  attention: xformers\n", ["model.attention", "xformers is not installed", "'.[gpu]'"])]
      if importlib.util.find_spec("xformers") is None else []),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[e[0] for _, e in BAD])
def test_bad_config_gives_one_clear_message(tmp_path, text, expected):
    path = write(tmp_path, text)
    out = lclab("train", path, "--output-dir", tmp_path / "runs")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    message = " ".join(out.stderr.split())
    assert str(path) in message and "Fix:" in message
    for fragment in expected:
        assert fragment in message, (fragment, message)
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_a_space_given_to_train_and_a_trial_config_given_to_sweep_are_named_for_what_they_are(tmp_path):
    space = ROOT / "search_space/presets/quickstart.yaml"
    for args, message in ((["train", space], f"this is a space file (it has axes), not a trial config. Fix: sweep it: lclab sweep {space}"),
                          (["sweep", TINY, "--lab", tmp_path / "lab"], "this is a trial config (it has no axes), not a space")):
        out = lclab(*args)
        assert out.returncode == 2 and message in " ".join(out.stderr.split()), out.stderr
    assert not (tmp_path / "lab").exists()


@pytest.mark.parametrize("override,field", [
    ("seed=-1", "seed"), ("train.lr_encoder=-1e-3", "train.lr_encoder"), ("train.warmup_frac=2", "train.warmup_frac"),
    ("train.grad_clip=-1", "train.grad_clip"), ("train.log_every=0", "train.log_every"),
    ("train.warm_steps=0", "train.warm_steps"), ("data.val_examples=0", "data.val_examples"),
    ("data.n_symbols=1", "data.n_symbols"), ("data.val_fraction=1", "data.val_fraction"),
    ("data.tasks=[span_recall];data.span_len=0", "data.span_len"),
    ("model.decoder.n_layers=0", "model.decoder.n_layers"), ("model.encoder.n_heads=0", "model.encoder.n_heads"),
    ("model.encoder.d_model=0", "model.encoder.n_heads"), ("model.decoder.mlp_ratio=0", "model.decoder.mlp_ratio"),
])
def test_a_value_out_of_its_range_names_its_field(override, field):
    """Each of these trained silently, or crashed mid-trial (seed -1, log_every 0, n_heads 0), before."""
    from lclab.errors import ConfigError
    from lclab.trials.config import load_config

    with pytest.raises(ConfigError) as err:
        load_config(TINY, override.split(";"))
    assert err.value.field == field and "Fix:" in err.value.render(), err.value


def test_bad_override_is_reported_like_a_bad_file(tmp_path):
    out = lclab("train", TINY, "--set", "model.pooling=median", "--output-dir", tmp_path)
    assert out.returncode == 2 and "unknown pooling 'median'" in out.stderr and "Traceback" not in out.stderr


def test_missing_config_file(tmp_path):
    out = lclab("train", tmp_path / "nope.yaml")
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("kind", ["missing", "directory", "device"])
def test_a_path_that_is_no_yaml_file_is_named_for_what_it_is(tmp_path, kind):
    from lclab.errors import ConfigError
    from lclab.search_space.space import load_space
    from lclab.trials.config import load_config

    (tmp_path / "dir.yaml").mkdir()
    path, expected = {"missing": (tmp_path / "nope.yaml", "does not exist"),
                      "directory": (tmp_path / "dir.yaml", "is a directory, not a file"),
                      "device": (Path(os.devnull), "is not a regular file")}[kind]
    quickstart = (ROOT / "search_space" / "presets" / "quickstart.yaml").read_text()
    base_space = write(tmp_path, quickstart.replace("base: ../../configs/trial/tiny.yaml", f"base: {path}"), "space.yaml")
    for load, target, field in ((load_config, path, "<config>"), (load_space, path, "<space>"), (load_space, base_space, "base")):
        with pytest.raises(ConfigError) as err:
            load(target)
        assert err.value.field == field and expected in err.value.problem and str(path) in err.value.problem, err.value
    out = lclab("train", path)  # and the command line shows it as one paragraph
    assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_file_where_a_lab_or_run_folder_should_be_is_named(tmp_path):
    blocker = write(tmp_path, "mine\n", "notes.txt")
    space = ROOT / "search_space" / "presets" / "quickstart.yaml"
    for args, field in ((["train", TINY, *FAST, "--output-dir", blocker], "output_dir"),
                        (["sweep", space, "--lab", blocker], "--lab"),
                        (["sweep", space, "--storage", blocker / "lab.db"], "storage")):
        out = lclab(*args)
        message = " ".join(out.stderr.split())
        assert out.returncode == 2 and f"field '{field}': {blocker} is a file" in message, out.stderr
        assert "Traceback" not in out.stderr
    assert blocker.read_text() == "mine\n"


@pytest.mark.parametrize("option,value", [("--workers", "0"), ("--jobs", "0"), ("--threads", "-1"), ("--replicate-top", "0"),
                                          ("--seeds", "0")])
def test_a_sweep_count_out_of_range_is_refused_before_anything_runs(tmp_path, option, value):
    space = ROOT / "search_space" / "presets" / "quickstart.yaml"
    out = lclab("sweep", space, "--lab", tmp_path / "lab", option, value)
    message = " ".join(out.stderr.split())
    assert out.returncode == 2 and f"Invalid value for '{option}'" in message and "Traceback" not in message, out.stderr
    assert not (tmp_path / "lab").exists()


def test_train_prints_the_summary_table(tmp_path):
    out = lclab("train", TINY, *FAST, "--output-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("val/loss_compressed", "val/retention", "val/reconstruction/exact_match", "params/total",
                 "flops_per_token/total", "sys/tokens_per_s", "run directory"):
        assert name in out.stdout, name


def test_a_binary_file_as_config_is_refused_in_one_line(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"PK\x03\x04\x00\xff\xfe\x80 binary checkpoint")
    for command in (["train", path], ["sweep", path, "--lab", tmp_path / "lab"]):
        out = lclab(*command)
        assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout, out.stderr
        message = " ".join(out.stderr.split())
        assert "not a text file" in message and str(path) in message and "Fix:" in message


def test_messages_end_with_one_full_stop(tmp_path):
    out = lclab("train", write(tmp_path, "model:\n  poolng: mean\n"))
    message = " ".join(out.stderr.split())
    assert "did you mean 'pooling'?" in message and "?." not in message and ".." not in message


def test_the_sweep_display_names_failed_trials_with_their_reasons_unless_their_point_completed_since():
    import optuna

    from lclab.cli import _failed_lines

    study = optuna.create_study(study_name="s")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-9, 1e40, log=True)}
    for lr, reason, attrs, state in [(1e30, "training loss is nan at step 1", {"diverged": True}, "FAIL"),
                                     (1e-3, "ConfigError: data file(s) not found: corpus.txt", {}, "FAIL"),
                                     (2e-3, "ConfigError: data file(s) not found: corpus.txt", {}, "FAIL"),
                                     (2e-3, None, {}, "COMPLETE")]:  # the last point was fixed and re-run
        done = state == "COMPLETE"
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState[state], value=1.0 if done else None, params={"lr": lr}, distributions=dist,
            user_attrs={"seed": 0, **attrs, **({"fail_reason": reason} if reason else {})}))
    lines = _failed_lines(study)
    assert len(lines) == 2, lines
    assert "diverged" in lines[0] and "trial(s) 0:" in lines[0] and "loss is nan" in lines[0]
    assert "crashed" in lines[1] and "trial(s) 1:" in lines[1] and "corpus.txt" in lines[1]
