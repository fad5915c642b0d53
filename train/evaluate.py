"""Metrics for stance: accuracy, macro-F1, per-class and per-target scores, SemEval F_avg, FNC-1 score."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    f1_score,
    precision_recall_fscore_support,
)

FNC_LABELS = {"agree", "disagree", "discuss", "unrelated"}
# Per-target metrics are logged one by one only for a handful of targets; with
# many (FNC-1 has 1,600 headlines) they go to a per-target table instead.
MAX_TARGET_METRICS = 30


def metric_names(labels) -> list[str]:
    """Headline metrics that make sense for a label set."""
    names = ["accuracy", "macro_f1"]
    upper = {label.upper() for label in labels}
    if {"FAVOR", "AGAINST"} <= upper:
        names.append("f_avg")
    if set(labels) == FNC_LABELS:
        names.append("fnc_score")
    return names


def safe_name(text: str) -> str:
    """A metric-name-safe version of a label or target."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_")


def f_avg(y_true, y_pred, labels) -> float:
    """SemEval-2016 Task 6: mean F1 of FAVOR and AGAINST over pooled predictions."""
    by_upper = {label.upper(): label for label in labels}
    favor_against = [by_upper["FAVOR"], by_upper["AGAINST"]]
    return float(np.mean(f1_score(y_true, y_pred, labels=favor_against, average=None, zero_division=0)))


def fnc_score(y_true, y_pred) -> float:
    """FNC-1 relative score: 0.25 per pair judged related/unrelated correctly, a further 0.75
    per related pair given its exact label, divided by the score of a perfect submission."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    true_related, pred_related = y_true != "unrelated", y_pred != "unrelated"
    score = 0.25 * np.sum(true_related == pred_related) + 0.75 * np.sum(true_related & (y_true == y_pred))
    best = 0.25 * len(y_true) + 0.75 * np.sum(true_related)
    return float(score / best) if best else 0.0


def compute_metrics(y_true, y_pred, labels, targets=None) -> dict[str, float]:
    """Every metric for one split, unprefixed: ``accuracy``, ``macro_f1``, ``f1_FAVOR``, ``macro_f1_target_X``…"""
    labels = list(labels)
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        name = safe_name(label)
        metrics[f"precision_{name}"] = float(precision[i])
        metrics[f"recall_{name}"] = float(recall[i])
        metrics[f"f1_{name}"] = float(f1[i])
    if "f_avg" in metric_names(labels):
        metrics["f_avg"] = f_avg(y_true, y_pred, labels)
    if "fnc_score" in metric_names(labels):
        metrics["fnc_score"] = fnc_score(y_true, y_pred)
    if targets is not None and len(set(targets)) <= MAX_TARGET_METRICS:
        table = per_target_table(y_true, y_pred, targets)
        for target, score in zip(table["target"], table["macro_f1"]):
            metrics[f"macro_f1_target_{safe_name(target)[:200]}"] = score
    return metrics


def per_target_table(y_true, y_pred, targets) -> pd.DataFrame:
    """Rows, accuracy and macro-F1 (over the labels present) for each target."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    targets = np.asarray(targets, dtype=object)
    rows = []
    for target in sorted(set(targets)):
        mask = targets == target
        present = sorted(set(y_true[mask]) | set(y_pred[mask]))
        rows.append(
            {
                "target": target,
                "rows": int(mask.sum()),
                "accuracy": float(np.mean(y_true[mask] == y_pred[mask])),
                "macro_f1": float(f1_score(y_true[mask], y_pred[mask], labels=present, average="macro", zero_division=0)),
            }
        )
    return pd.DataFrame(rows, columns=["target", "rows", "accuracy", "macro_f1"])


def report_text(y_true, y_pred, labels) -> str:
    return classification_report(y_true, y_pred, labels=list(labels), digits=4, zero_division=0)


def confusion_figure(y_true, y_pred, labels, title: str):
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2.5))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=list(labels), ax=axis, colorbar=False, cmap="Blues")
    axis.set_title(title)
    figure.tight_layout()
    return figure
