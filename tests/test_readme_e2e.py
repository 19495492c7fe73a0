"""The README's main command, run as a newcomer runs it: a fresh clone, a new virtual environment, a fresh cache,
default threads. Checks what the README promises: the report and its graded finding, that the tiny trials it ran
used their context against an honest no-context baseline, and that the install brings what the README uses
(parquet exports; the PostgreSQL driver is an extra, named when missing). The proof over seeds and axes is
`benchmarks/measurability.py`."""
import json
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]


def main_command() -> str:
    block = re.search(r"Run the main job.*?```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S).group(1)
    assert block.startswith("python3 -m venv .venv") and "lclab sweep" in block and "lclab report" in block
    return block


@pytest.mark.slow
def test_the_readme_main_command_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "lclab"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(LCLAB_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home"), COLUMNS="200",
               PATH=os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p))
    out = subprocess.run(["bash", "-c", main_command()], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = clone / "reports" / "quickstart"
    assert (report / "report.html").stat().st_size > 10_000 and (report / "recipe.yaml").is_file()
    claims = json.loads((report / "principles.json").read_text())["studies"]["quickstart"]["claims"]
    ratio = next(c for c in claims if c["axis"] == "ratio")
    # a graded finding in the right direction: 1:4 reconstructs worse than 1:2 (a seed that did not learn is
    # left out and named, which can cost a matched pair and with it the "high" grade)
    assert ratio["grade"] in ("high", "medium") and ratio["details"]["better"] is False and ratio["effect"] < -0.1, ratio
    assert "train it: lclab train reports/quickstart/recipe.yaml" in (report / "recipe.yaml").read_text()

    def venv(*command, cwd=clone):
        return subprocess.run(["bash", "-c", f". {clone}/.venv/bin/activate && " + " ".join(command)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)

    parquet = venv("lclab", "trials", "quickstart", "--format", "parquet", "-o", "q.parquet")
    assert parquet.returncode == 0 and (clone / "q.parquet").stat().st_size > 0, parquet.stderr
    trials = pd.read_parquet(clone / "q.parquet")
    trials = trials[trials.state != "SURPLUS"]  # a sample drawn when the two workers raced for the grid's last point
    assert len(trials) == 10 and (trials.state == "COMPLETE").all()
    tiny_trials_use_their_context_against_an_honest_baseline(trials[trials["param.ratio"] == 4])
    # the plain install has no PostgreSQL driver: the message names the extra that brings it
    driver = venv("lclab", "studies", "--storage", "postgresql://lclab@127.0.0.1:1/lab")
    assert driver.returncode == 2 and "lclab[postgres]" in driver.stderr and "Traceback" not in driver.stderr, driver.stderr

    # from a project of the user's own that has a `models/` package (most ML repositories do): lclab still trains,
    # and `import models` is still the user's package
    user = tmp_path / "myproject"
    (user / "models").mkdir(parents=True)
    (user / "models" / "__init__.py").write_text("WHO = 'mine'\n")
    own = venv("python", "-c", "'import models, lclab.models; assert models.WHO == \"mine\", models.__file__'", cwd=user)
    assert own.returncode == 0, own.stderr[-2000:]
    train = venv("lclab", "train", str(clone / "configs/trial/tiny.yaml"), "--set", "train.steps=3", "--set",
                 "train.decoder_init=scratch", "--set", "data.val_examples=32", "--set", "progress=false", "--output-dir",
                 "runs", cwd=user)
    assert train.returncode == 0 and "val/loss_compressed" in train.stdout, train.stderr[-2000:]
    assert list((user / "runs").glob("tiny-*/metrics.json"))


def tiny_trials_use_their_context_against_an_honest_baseline(trials: pd.DataFrame) -> None:
    chance = 1 / 64
    assert (trials["val/reconstruction/acc_full"] > 0.9).all()  # raw context: the warm decoder copies it
    assert (trials["val/reconstruction/acc_none"] < 3 * chance).all()  # without context nothing is recoverable
    # the no-context rows train (train.none_share): the decoder's no-context loss comes down to near a uniform guess
    # (it was 8.1 nats against ln 64 = 4.16 when that mode never trained); the training unigram, exactly uniform on
    # random symbols, is the better no-context model here and stands in, so retention is defined and not inflated
    assert (trials["val/loss_none"] < trials["val/loss_uniform"] + 0.25).all()
    assert (trials["val/loss_unigram"] - trials["val/loss_uniform"]).abs().max() < 0.02
    assert trials["val/baseline"].isin(["unigram", "no-context mode"]).all()
    learned = trials[trials["val/learned"] == 1]
    assert len(learned) >= 4, trials["val/reconstruction/acc"]
    # 1:4 latents carry much of the context on every seed (0.18-0.21 after 400 steps, 12x chance)
    assert learned["val/reconstruction/acc"].median() > 10 * chance and (learned["val/reconstruction/acc"] > 3 * chance).all()
    assert (learned["val/retention_status"] == "ok").all() and learned["val/retention"].between(0, 0.9).all()
    own = trials[trials.seed == 0].iloc[0]  # the tiny config's own seed keeps the bounds it always had
    assert own["val/reconstruction/acc"] > 10 * chance and own["val/retention_status"] == "ok"
    assert 0.1 < own["val/retention"] < 0.9
