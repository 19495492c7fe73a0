"""The kv shortcut benchmark's scoring: it must tell a model that binds keys to values from one that guesses fresh
values from the context's bag, on the real kv tasks' batches."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from shortcut import query_profile  # noqa: E402

from lclab.trials import TrialConfig  # noqa: E402
from lclab.trials.synthetic import generate  # noqa: E402


@pytest.fixture(params=["kv_recall", "kv_offset"])
def batch(request):
    d = TrialConfig().data
    context, text, _ = generate(request.param, 0, 0, 32, d)
    return context, text, d.kv_pairs


def test_a_binder_is_right_on_every_query_and_always_in_the_bag(batch):
    context, text, P = batch
    prof = query_profile(context, text, text.copy(), P)  # predicts every value
    assert prof["right"].all() and prof["in_bag"].all()
    values = text[:, 1:2 * P:2]
    repeated = np.array([[v in set(row[:i].tolist()) for i, v in enumerate(row)] for row in values])
    assert (prof["fresh"] == ~repeated).all()  # a value two pairs share is fresh only the first time


def test_repeating_the_last_answer_is_in_the_bag_but_neither_right_nor_fresh(batch):
    context, text, P = batch
    pred = text.copy()
    pred[:, 3:2 * P:2] = text[:, 1:2 * P - 2:2]  # query i answers query i-1's value
    prof = query_profile(context, text, pred, P)
    assert prof["in_bag"].all()
    later_distinct = text[:, 3:2 * P:2] != text[:, 1:2 * P - 2:2]  # values may repeat across pairs
    assert not prof["right"][:, 1:][later_distinct].any()
    assert not prof["fresh"][:, 1:].any() and prof["fresh"][:, 0].all()


def test_keys_and_distractors_are_outside_the_bag(batch):
    context, text, P = batch
    pred = text.copy()
    pred[:, 1:2 * P:2] = text[:, 0:2 * P:2]  # answers every query with its own key
    prof = query_profile(context, text, pred, P)
    assert not prof["in_bag"].any() and not prof["right"].any()
    distractors = context[:, 2 * P:]
    pred[:, 1:2 * P:2] = distractors[:, :P]
    outside = ~np.array([[g in set(c[:2 * P].tolist()) for g in row] for row, c in zip(distractors[:, :P], context)])
    assert (query_profile(context, text, pred, P)["in_bag"] == ~outside).all()
