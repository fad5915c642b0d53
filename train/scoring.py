"""Scoring a labelled frame: its metrics (with an interval for the headline), and what a run
keeps of them. `stance train` (validation and test), `stance evaluate` and `stance cascade`
score through here, so a metric means the same in each of their runs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from train import report, tracking
from train.metrics import bootstrap_interval, compute_metrics, per_target_table, report_text


def score(
    split: str,
    truth,
    predicted,
    labels,
    targets=None,
    headline: str | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """``{split}_{metric}`` for every metric of the split (per target too, given ``targets``),
    and with ``headline`` its 95 % bootstrap interval as ``{split}_{headline}_ci_low`` and
    ``_ci_high``."""
    metrics = {
        f"{split}_{name}": value
        for name, value in compute_metrics(truth, predicted, labels, targets).items()
    }
    if headline is not None:
        low, high = bootstrap_interval(truth, predicted, labels, headline, seed)
        metrics |= {f"{split}_{headline}_ci_low": low, f"{split}_{headline}_ci_high": high}
    return metrics


def log_scores(
    split: str, title: str, truth, predicted, labels, targets, rows: pd.DataFrame
) -> None:
    """What a run keeps of a scored split, in the active run: the classification report, the
    confusion matrix, the per-target table (given ``targets``) and ``rows``, one per scored row
    with its gold and predicted labels, so that two runs on the same rows can be compared."""
    figure = report.confusion_figure(truth, predicted, labels, title)
    try:
        tracking.log_evaluation(
            split,
            report_text(truth, predicted, labels),
            figure,
            None if targets is None else per_target_table(truth, predicted, targets),
        )
    finally:
        plt.close(figure)
    tracking.log_predictions(split, rows)
