"""Metrics by hand: the formulas, the bootstrap behind intervals, and their agreement."""

import pytest

from train.metrics import (
    bootstrap_interval,
    compute_metrics,
    f_avg,
    fnc_score,
    headline_value,
    metric_names,
    report_text,
)
from train.report import calibration


def test_fnc_score_by_hand():
    truth = ["agree", "unrelated", "discuss", "disagree"]
    guess = ["discuss", "unrelated", "discuss", "unrelated"]
    # related/unrelated right on 3 pairs (0.75) + exact on 1 related pair (0.75) = 1.5;
    # a perfect submission scores 4 * 0.25 + 3 * 0.75 = 3.25.
    assert fnc_score(truth, guess) == pytest.approx(1.5 / 3.25)
    assert fnc_score(truth, truth) == 1.0


def test_f_avg_ignores_none():
    truth = ["FAVOR", "FAVOR", "AGAINST", "NONE"]
    guess = ["FAVOR", "AGAINST", "AGAINST", "NONE"]
    # F1(FAVOR) = 2/3, F1(AGAINST) = 2/3
    assert f_avg(truth, guess, ["FAVOR", "AGAINST", "NONE"]) == pytest.approx(2 / 3)


def test_metrics_include_per_class_and_per_target():
    metrics = compute_metrics(
        ["FAVOR", "NONE", "AGAINST"],
        ["FAVOR", "NONE", "NONE"],
        ["FAVOR", "AGAINST", "NONE"],
        ["Hillary Clinton", "Hillary Clinton", "tax"],
    )
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["recall_AGAINST"] == 0.0 and metrics["f1_FAVOR"] == 1.0
    assert metrics["macro_f1_target_Hillary_Clinton"] == 1.0
    assert metrics["macro_f1_target_tax"] == 0.0
    assert "f_avg" in metrics and "fnc_score" not in metrics


def test_macro_f1_leaves_out_a_label_that_no_row_carries_and_none_is_predicted():
    labels = ["FAVOR", "AGAINST", "NONE"]
    truth, guess = ["FAVOR", "AGAINST", "FAVOR"], ["FAVOR", "AGAINST", "AGAINST"]
    metrics = compute_metrics(truth, guess, labels)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert metrics["f1_NONE"] == 0.0, "every declared label keeps its metric"
    assert "NONE" not in report_text(truth, guess, labels)
    # Predicted once, NONE is a label the model got wrong: it counts, with F1 0.
    assert compute_metrics(truth, ["FAVOR", "AGAINST", "NONE"], labels)[
        "macro_f1"
    ] == pytest.approx((2 / 3 + 1 + 0) / 3)


@pytest.mark.parametrize("seed", range(5))
def test_the_bootstraps_macro_f1_agrees_with_the_metrics_when_labels_are_missing(seed):
    import numpy as np

    labels = ("FAVOR", "AGAINST", "NONE", "MIXED")
    rng = np.random.default_rng(seed)
    truth, guess = (
        rng.choice(labels[:2], 12),
        rng.choice(labels[:3], 12),
    )  # MIXED nowhere, NONE only predicted
    codes = {label: i for i, label in enumerate(labels)}
    value = headline_value(
        np.array([codes[x] for x in truth]), np.array([codes[x] for x in guess]), labels, "macro_f1"
    )
    assert value == pytest.approx(compute_metrics(truth, guess, labels)["macro_f1"])


def test_headline_metrics_follow_the_label_set():
    assert metric_names(["PRO", "CON"]) == ["accuracy", "macro_f1"]
    assert "fnc_score" in metric_names(["agree", "disagree", "discuss", "unrelated"])


def test_report_headline_values_match_the_metrics():
    import numpy as np

    labels = ("FAVOR", "AGAINST", "NONE")
    rng = np.random.default_rng(0)
    truth = rng.choice(labels, 300)
    guess = np.where(rng.random(300) < 0.7, truth, rng.choice(labels, 300))
    codes = {label: i for i, label in enumerate(labels)}
    t, g = np.array([codes[x] for x in truth]), np.array([codes[x] for x in guess])
    reference = compute_metrics(truth, guess, labels)
    for name in ("accuracy", "macro_f1", "f_avg"):
        assert headline_value(t, g, labels, name) == pytest.approx(reference[name])
    low, high = bootstrap_interval(truth, guess, labels, "macro_f1", seed=1)
    assert low < reference["macro_f1"] < high and high - low < 0.25
    proba = np.full((300, 3), 0.1)
    proba[np.arange(300), g] = 0.8
    ece, table = calibration(truth, proba, labels)
    assert ece == pytest.approx(abs(0.8 - reference["accuracy"])) and table["rows"].sum() == 300


def test_report_fnc_value_matches():
    import numpy as np

    labels = ("agree", "disagree", "discuss", "unrelated")
    truth = ["agree", "unrelated", "discuss", "disagree"]
    guess = ["discuss", "unrelated", "discuss", "unrelated"]
    codes = {label: i for i, label in enumerate(labels)}
    value = headline_value(
        np.array([codes[x] for x in truth]),
        np.array([codes[x] for x in guess]),
        labels,
        "fnc_score",
    )
    assert value == pytest.approx(fnc_score(truth, guess))


# --------------------------------------------------------------------------- `stance evaluate`, end
# to end
