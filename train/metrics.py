"""Every metric the project reports, written once: accuracy, macro-F1, per-class and per-target
scores, SemEval's F_avg, FNC-1's relative score, and the bootstrap behind intervals and paired
tests.

A leaf module: numpy and scikit-learn only, so that the config (which checks a headline
metric's name), training, evaluation, reports and run comparison can all import it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.metrics import (
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
    return float(
        np.mean(f1_score(y_true, y_pred, labels=favor_against, average=None, zero_division=0))
    )


def fnc_score(y_true, y_pred) -> float:
    """FNC-1 relative score: 0.25 per pair judged related/unrelated correctly, a further 0.75
    per related pair given its exact label, divided by the score of a perfect submission."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    true_related, pred_related = y_true != "unrelated", y_pred != "unrelated"
    score = 0.25 * np.sum(true_related == pred_related) + 0.75 * np.sum(
        true_related & (y_true == y_pred)
    )
    best = 0.25 * len(y_true) + 0.75 * np.sum(true_related)
    return float(score / best) if best else 0.0


def labels_present(labels, y_true, y_pred) -> list[str]:
    """The declared labels that some row carries or some prediction gives, in declared order.

    A label with neither has no F1 to speak of: counting it as 0 would cut the macro-F1 of a
    batch annotated FAVOR and AGAINST only by a third. scikit-learn's own default averages
    over the same labels."""
    seen = set(y_true) | set(y_pred)
    return [label for label in labels if label in seen]


def compute_metrics(y_true, y_pred, labels, targets=None) -> dict[str, float]:
    """Every metric for one split, unprefixed: ``accuracy``, ``macro_f1``, ``f1_FAVOR``,
    ``macro_f1_target_X``…

    ``macro_f1`` averages over :func:`labels_present`; per-label figures are given for
    every declared label (0 for one that is absent)."""
    labels = list(labels)
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(
                y_true,
                y_pred,
                labels=labels_present(labels, y_true, y_pred) or labels,
                average="macro",
                zero_division=0,
            )
        ),
    }
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
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
                "macro_f1": float(
                    f1_score(
                        y_true[mask], y_pred[mask], labels=present, average="macro", zero_division=0
                    )
                ),
            }
        )
    return pd.DataFrame(rows, columns=["target", "rows", "accuracy", "macro_f1"])


def report_text(y_true, y_pred, labels) -> str:
    """scikit-learn's classification report over :func:`labels_present`, so that its macro
    average is the logged ``macro_f1``."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    return classification_report(
        y_true,
        y_pred,
        labels=labels_present(labels, y_true, y_pred) or list(labels),
        digits=4,
        zero_division=0,
    )


BOOTSTRAP_SAMPLES = 1000


def headline_value(
    codes_true: np.ndarray, codes_pred: np.ndarray, labels: tuple[str, ...], metric: str
) -> float:
    """One metric from integer-coded labels, fast enough to repeat a thousand times."""
    k = len(labels)
    confusion = np.bincount(codes_true * k + codes_pred, minlength=k * k).reshape(k, k)
    if metric == "accuracy":
        return float(np.trace(confusion) / confusion.sum())
    if metric == "fnc_score":
        unrelated = labels.index("unrelated")
        true_related, pred_related = codes_true != unrelated, codes_pred != unrelated
        score = 0.25 * np.sum(true_related == pred_related) + 0.75 * np.sum(
            true_related & (codes_true == codes_pred)
        )
        return float(score / (0.25 * len(codes_true) + 0.75 * np.sum(true_related)))
    tp = np.diag(confusion).astype(float)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    if metric == "f_avg":
        upper = [label.upper() for label in labels]
        return float((f1[upper.index("FAVOR")] + f1[upper.index("AGAINST")]) / 2)
    present = (
        denominator > 0
    )  # as labels_present: a label no row carries and none is predicted has no F1
    return float(f1[present].mean()) if present.any() else 0.0  # macro_f1


def bootstrap_interval(
    y_true, y_pred, labels, metric: str, seed: int, samples: int = BOOTSTRAP_SAMPLES
) -> tuple[float, float]:
    """95 % percentile interval of ``metric`` over rows resampled with replacement."""
    index = {label: i for i, label in enumerate(labels)}
    codes_true = np.array([index[v] for v in y_true])
    codes_pred = np.array([index[v] for v in y_pred])
    rng = np.random.default_rng(seed)
    values = [
        headline_value(codes_true[rows], codes_pred[rows], tuple(labels), metric)
        for rows in (rng.integers(0, len(codes_true), len(codes_true)) for _ in range(samples))
    ]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(
    truth, first, second, labels, metric: str, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES
) -> dict:
    """Resample test rows with replacement, score both runs on the same rows, and read the
    difference (second - first): its 95 % interval and a two-sided p-value for "no difference"."""
    index = {label: i for i, label in enumerate(labels)}
    t = np.array([index[v] for v in truth])
    a = np.array([index[v] for v in first])
    b = np.array([index[v] for v in second])
    observed = headline_value(t, b, labels, metric) - headline_value(t, a, labels, metric)
    rng = np.random.default_rng(seed)
    differences = np.empty(samples)
    for i in range(samples):
        rows = rng.integers(0, len(t), len(t))
        differences[i] = headline_value(t[rows], b[rows], labels, metric) - headline_value(
            t[rows], a[rows], labels, metric
        )
    low, high = np.percentile(differences, [2.5, 97.5])
    # Share of resamples on the other side of zero, doubled: how often chance alone flips the sign.
    p_value = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0)))
    return {
        "metric": metric,
        "difference": float(observed),
        "low": float(low),
        "high": float(high),
        "p_value": float(p_value),
        "samples": samples,
    }
