"""The tiny config learns measurably on 2 CPU cores and its baselines are honest. That it ranks designs is the
README test's graded quickstart finding (1:4 against 1:2); the proof over seeds and axes is
`benchmarks/measurability.py`."""
from pathlib import Path

import pytest

from lclab.trials import load_config, run_trial

TINY = Path(__file__).parents[2] / "configs" / "trial" / "tiny.yaml"


@pytest.mark.slow
def test_tiny_trial_uses_its_context_and_has_an_honest_no_context_baseline(tmp_path):
    chance = 1 / 64
    r4 = run_trial(load_config(TINY, ["progress=false", f"output_dir={tmp_path}"])).metrics
    assert r4["val/reconstruction/acc_full"] > 0.9  # raw context: the warm decoder copies it
    assert r4["val/reconstruction/acc_none"] < 3 * chance  # without context nothing is recoverable
    assert r4["val/reconstruction/acc"] > 10 * chance  # 1:4 latents carry most of the context
    # the no-context rows train (train.none_share): the decoder's no-context loss comes down to near a uniform guess
    # (it was 8.1 nats against ln 64 = 4.16 when that mode never trained); the training unigram, exactly uniform on
    # random symbols, is the better no-context model here and stands in, so retention is defined and not inflated
    assert r4["val/loss_none"] < r4["val/loss_uniform"] + 0.25
    assert r4["val/loss_unigram"] == pytest.approx(r4["val/loss_uniform"], abs=0.02)
    assert r4["val/baseline"] in ("unigram", "no-context mode")
    assert r4["val/retention_status"] == "ok" and 0.1 < r4["val/retention"] < 0.9
