"""The model card's limits, from the facts `stance train` gathers."""

from __future__ import annotations

import pytest

from train.report import _limits


def facts(interval: tuple[float, float], test_rows: int = 18) -> dict:
    return {
        "metrics": {"test_f1_PRO": 1.0, "test_f1_CON": 1.0, "test_ece": 0.05},
        "labels": ["PRO", "CON"],
        "config": {"model": {"strategy": "joint"}, "features": {"word": {}}},
        "splits": {"train": 84, "valid": 18, "test": test_rows},
        "interval": interval,
    }


@pytest.mark.parametrize(
    "interval, expected, absent",
    [
        ((0.61, 0.93), "could lie anywhere from 0.6100 to 0.9300", "every bootstrap resample"),
        ((1.0, 1.0), "every bootstrap resample scores 1.0000: too few rows", "anywhere from"),
    ],
)
def test_a_small_test_split_is_named_and_a_flat_interval_is_not_read_as_certainty(
    interval, expected, absent
):
    text = " ".join(_limits(facts(interval)))
    assert "The test split is small (18 rows)" in text
    assert expected in text and absent not in text


def test_a_large_test_split_is_not_flagged():
    assert not any(
        "test split is small" in line for line in _limits(facts((0.7, 0.8), test_rows=1249))
    )


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("per_target", "are predicted by the joint model trained on all targets"),
        ("shared_per_target", "get only the weights shared by all targets"),
    ],
)
def test_the_card_says_what_unseen_targets_get_in_the_words_of_the_predict_note(strategy, expected):
    card = facts((0.7, 0.8), test_rows=1249)
    card["config"]["model"]["strategy"] = strategy
    assert f"Rows on a target unseen in training {expected}." in _limits(card)
    assert not any(
        "unseen in training" in line for line in _limits(facts((0.7, 0.8), test_rows=1249))
    )  # joint: nothing to say
