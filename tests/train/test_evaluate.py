import pytest

from train.evaluate import compute_metrics, f_avg, fnc_score, metric_names


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
    metrics = compute_metrics(["FAVOR", "NONE", "AGAINST"], ["FAVOR", "NONE", "NONE"], ["FAVOR", "AGAINST", "NONE"], ["Hillary Clinton", "Hillary Clinton", "tax"])
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["recall_AGAINST"] == 0.0 and metrics["f1_FAVOR"] == 1.0
    assert metrics["macro_f1_target_Hillary_Clinton"] == 1.0
    assert metrics["macro_f1_target_tax"] == 0.0
    assert "f_avg" in metrics and "fnc_score" not in metrics


def test_headline_metrics_follow_the_label_set():
    assert metric_names(["PRO", "CON"]) == ["accuracy", "macro_f1"]
    assert "fnc_score" in metric_names(["agree", "disagree", "discuss", "unrelated"])
