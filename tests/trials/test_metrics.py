"""Validation summaries from hand-made records: retention and its gate, the broken-baseline guard, and whether a
trial learned (against chance on synthetic tasks, against no context or a uniform guess on text)."""
import math

import pytest
import torch

from lclab.trials.metrics import Floors, summarize

N = 64


def records(compressed: float, full: float, none: float, acc: float = 0.5, task: str = "text", spread: float = 0.1,
            unigram: float | None = None):
    g = torch.Generator().manual_seed(0)
    noise = lambda: spread * torch.randn(N, generator=g, dtype=torch.float64)  # noqa: E731
    rec = {"task": task}
    modes = (("compressed", compressed), ("full", full), ("none", none), ("reconstruct", compressed))
    for mode, loss in modes + ((("unigram", unigram),) if unigram is not None else ()):
        losses = loss + noise()
        rec.update({f"{mode}/loss": losses, f"{mode}/loss_q1": losses, f"{mode}/has_q1": torch.ones(N, dtype=torch.bool),
                    f"{mode}/acc": (acc + 0.01 * noise()).clamp(0, 1), f"{mode}/exact": torch.zeros(N, dtype=torch.bool)})
    return [rec]


def test_retention_and_its_standard_error_from_hand_made_records():
    m = summarize(records(compressed=3.0, full=2.0, none=4.0, unigram=5.5), Floors(uniform=math.log(512)))
    assert m["val/retention_status"] == "ok" and m["val/retention"] == pytest.approx(0.5, abs=0.02)
    assert m["val/baseline"] == "no-context mode"
    assert 0 < m["val/retention_se"] < 0.05 and m["val/loss_uniform"] == pytest.approx(math.log(512))
    assert m["val/loss_unigram"] == pytest.approx(5.5, abs=0.05)


def test_retention_is_undefined_when_the_full_context_gain_is_noise():
    m = summarize(records(compressed=4.0, full=3.99, none=4.0, spread=0.5), Floors(uniform=math.log(512)))
    assert math.isnan(m["val/retention"]) and "3 SE above zero" in m["val/retention_status"]


def test_a_no_context_loss_above_a_uniform_guess_is_a_broken_baseline():
    """What the quickstart showed: L_none 8.10 nats where a uniform guess over 64 symbols scores 4.16."""
    m = summarize(records(compressed=4.0, full=3.0, none=8.1), Floors(uniform=math.log(64), chance_acc=1 / 64))
    assert math.isnan(m["val/retention"]) and "above a uniform guess" in m["val/retention_status"]


def test_a_no_context_loss_at_the_uniform_floor_is_no_broken_baseline():
    """A trained no-context mode on random symbols sits at ln 64 give or take noise: within 3 SE it is honest."""
    m = summarize(records(compressed=3.0, full=2.0, none=math.log(64) + 0.01), Floors(uniform=math.log(64)))
    assert m["val/retention_status"] == "ok"
    m = summarize(records(compressed=3.0, full=2.0, none=math.log(64) + 0.1), Floors(uniform=math.log(64)))
    assert "above a uniform guess" in m["val/retention_status"]


def test_the_unigram_stands_in_for_a_weaker_no_context_mode_so_retention_is_never_inflated():
    """What a tiny trial gives: its no-context rows reach 4.25 nats, the training unigram 4.16 (= ln 64)."""
    m = summarize(records(compressed=2.4, full=0.0, none=4.25, unigram=math.log(64)), Floors(uniform=math.log(64)))
    assert m["val/baseline"] == "unigram" and "below the decoder's no-context mode" in m["val/baseline_status"]
    assert m["val/retention_status"] == "ok"
    assert m["val/retention"] == pytest.approx((math.log(64) - 2.4) / math.log(64), abs=0.02)  # not (4.25 - 2.4) / 4.25
    assert m["val/gap_compressed"] == pytest.approx(math.log(64) - 2.4, abs=0.03)


def test_an_untrained_no_context_mode_without_a_unigram_gives_no_retention_and_says_why():
    m = summarize(records(compressed=3.0, full=2.0, none=8.1), Floors(uniform=math.log(512), none_trained=False))
    assert math.isnan(m["val/retention"]) and "train.none_share" in m["val/retention_status"]
    m = summarize(records(compressed=3.0, full=2.0, none=8.1, unigram=5.0), Floors(uniform=math.log(512), none_trained=False))
    assert m["val/baseline"] == "unigram" and "train.none_share is 0" in m["val/baseline_status"]
    assert m["val/retention_status"] == "ok"


def test_on_text_a_baseline_above_a_uniform_guess_cannot_make_a_trial_look_learned():
    # compressed context no better than a uniform guess: not learned, however bad both no-context models are
    m = summarize(records(compressed=math.log(512), full=3.0, none=8.1, unigram=7.0), Floors(uniform=math.log(512)))
    assert m["val/learned"] == 0.0 and "did not learn" in m["val/learned_status"]


@pytest.mark.parametrize("acc,learned", [(1 / 64, False), (0.2, True)])
def test_a_synthetic_trial_learned_only_above_chance(acc, learned):
    m = summarize(records(compressed=4.0, full=3.0, none=4.2, acc=acc, task="reconstruction"),
                  Floors(uniform=math.log(64), chance_acc=1 / 64))
    assert m["val/learned"] == float(learned) and m["val/chance_acc"] == pytest.approx(1 / 64)
    assert m["val/learned_status"].startswith("learned" if learned else "did not learn")


def test_on_text_a_broken_baseline_cannot_make_a_trial_look_learned():
    # compressed context at the uniform loss: no better than guessing, however bad the no-context baseline is
    m = summarize(records(compressed=math.log(512), full=3.0, none=8.1), Floors(uniform=math.log(512)))
    assert m["val/learned"] == 0.0 and "did not learn" in m["val/learned_status"]
    m = summarize(records(compressed=4.0, full=3.0, none=5.0), Floors(uniform=math.log(512)))
    assert m["val/learned"] == 1.0
