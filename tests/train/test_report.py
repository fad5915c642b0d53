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


def _probabilities():
    import numpy as np

    rng = np.random.default_rng(3)
    labels = ("FAVOR", "AGAINST", "NONE")
    proba = rng.dirichlet([0.6, 0.6, 0.6], size=300)
    proba = proba[proba.max(axis=1) < 0.9]
    # One lone row above 0.9: the bin a reader must see as a single row.
    proba = np.vstack([proba, [0.95, 0.03, 0.02]])
    truth = np.asarray(labels, dtype=object)[rng.integers(0, 3, size=len(proba))]
    return truth, proba, labels


def test_the_reliability_figure_draws_each_bin_s_rows_and_its_edges_print_clean():
    import matplotlib.pyplot as plt

    from train.report import calibration, reliability_figure

    truth, proba, labels = _probabilities()
    ece, table = calibration(truth, proba, labels)
    assert "0.3" in [str(edge) for edge in table["bin_low"]]  # not 0.30000000000000004
    assert table.to_csv(index=False).count("0000000") == 0
    figure = reliability_figure(table, ece, "test")
    curve, histogram = figure.axes
    labels_drawn = [text.get_text() for text in curve.texts]
    assert labels_drawn == [f"n={rows:,}" for rows in table["rows"]]
    assert "n=1" in labels_drawn  # the lone row is labelled as one
    assert [bar.get_height() for bar in histogram.patches] == list(table["rows"])
    sizes = curve.collections[0].get_sizes()
    assert sizes.argmin() == table["rows"].argmin() and sizes.argmax() == table["rows"].argmax()
    plt.close(figure)


def test_the_confusion_figure_shows_counts_and_shares_of_each_true_label():
    import matplotlib.pyplot as plt

    from train.report import confusion_figure

    truth = ["FAVOR"] * 8 + ["AGAINST"] * 2
    predicted = ["FAVOR"] * 6 + ["AGAINST"] * 2 + ["AGAINST"] * 2
    figure = confusion_figure(truth, predicted, ("FAVOR", "AGAINST"), "test")
    counts, shares = (axis for axis in figure.axes if axis.get_title())
    assert {t.get_text() for t in counts.texts} == {"6", "2", "0"}
    assert {t.get_text() for t in shares.texts} == {"0.75", "0.25", "0.00", "1.00"}
    plt.close(figure)
