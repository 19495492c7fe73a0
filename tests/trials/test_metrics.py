"""Validation summaries from hand-made records: retention and its gate, the broken-baseline guard, and whether a
trial learned (against chance on synthetic tasks, against no context or a uniform guess on text)."""
import math

import pytest
import torch

from lclab.trials.metrics import summarize

N = 64


def records(compressed: float, full: float, none: float, acc: float = 0.5, task: str = "text", spread: float = 0.1):
    g = torch.Generator().manual_seed(0)
    noise = lambda: spread * torch.randn(N, generator=g, dtype=torch.float64)  # noqa: E731
    rec = {"task": task}
    for mode, loss in (("compressed", compressed), ("full", full), ("none", none), ("reconstruct", compressed)):
        losses = loss + noise()
        rec.update({f"{mode}/loss": losses, f"{mode}/loss_q1": losses, f"{mode}/has_q1": torch.ones(N, dtype=torch.bool),
                    f"{mode}/acc": (acc + 0.01 * noise()).clamp(0, 1), f"{mode}/exact": torch.zeros(N, dtype=torch.bool)})
    return [rec]


def test_retention_and_its_standard_error_from_hand_made_records():
    m = summarize(records(compressed=3.0, full=2.0, none=4.0), uniform_loss=math.log(512))
    assert m["val/retention_status"] == "ok" and m["val/retention"] == pytest.approx(0.5, abs=0.02)
    assert 0 < m["val/retention_se"] < 0.05 and m["val/loss_uniform"] == pytest.approx(math.log(512))


def test_retention_is_undefined_when_the_full_context_gain_is_noise():
    m = summarize(records(compressed=4.0, full=3.99, none=4.0, spread=0.5), uniform_loss=math.log(512))
    assert math.isnan(m["val/retention"]) and "3 SE above zero" in m["val/retention_status"]


def test_a_no_context_loss_above_a_uniform_guess_is_a_broken_baseline():
    """What the quickstart showed: L_none 8.10 nats where a uniform guess over 64 symbols scores 4.16."""
    m = summarize(records(compressed=4.0, full=3.0, none=8.1), chance_acc=1 / 64, uniform_loss=math.log(64))
    assert math.isnan(m["val/retention"]) and "above a uniform guess" in m["val/retention_status"]


@pytest.mark.parametrize("acc,learned", [(1 / 64, False), (0.2, True)])
def test_a_synthetic_trial_learned_only_above_chance(acc, learned):
    m = summarize(records(compressed=4.0, full=3.0, none=4.2, acc=acc, task="reconstruction"), chance_acc=1 / 64,
                  uniform_loss=math.log(64))
    assert m["val/learned"] == float(learned) and m["val/chance_acc"] == pytest.approx(1 / 64)
    assert m["val/learned_status"].startswith("learned" if learned else "did not learn")


def test_on_text_a_broken_baseline_cannot_make_a_trial_look_learned():
    # compressed context at the uniform loss: no better than guessing, however bad the no-context baseline is
    m = summarize(records(compressed=math.log(512), full=3.0, none=8.1), uniform_loss=math.log(512))
    assert m["val/learned"] == 0.0 and "did not learn" in m["val/learned_status"]
    m = summarize(records(compressed=4.0, full=3.0, none=5.0), uniform_loss=math.log(512))
    assert m["val/learned"] == 1.0
