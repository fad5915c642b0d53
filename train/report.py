"""The report logged with every run: calibration, a confidence interval for the headline
metric, the most weighted features, misclassified examples, and a model card built from
facts gathered during training."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from train.config import PER_TARGET_STRATEGIES, UNSEEN_TARGETS_GET  # noqa: E402
from train.metrics import BOOTSTRAP_SAMPLES, FNC_LABELS, safe_name  # noqa: E402
from train.models import pipelines  # noqa: E402

MISCLASSIFIED_ROWS = 500


def calibration(y_true, proba: np.ndarray, labels, bins: int = 10) -> tuple[float, pd.DataFrame]:
    """Expected calibration error of the top-class probability, and the reliability table behind
    it.
    """
    confidence = proba.max(axis=1)
    correct = np.asarray(labels, dtype=object)[proba.argmax(axis=1)] == np.asarray(
        y_true, dtype=object
    )
    # k / bins rather than linspace: the edges print as 0.3, not 0.30000000000000004.
    edges = np.arange(bins + 1) / bins
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin_low": edges[b],
                    "bin_high": edges[b + 1],
                    "rows": int(mask.sum()),
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                }
            )
    table = pd.DataFrame(rows, columns=["bin_low", "bin_high", "rows", "confidence", "accuracy"])
    ece = float(
        (table["rows"] * (table["confidence"] - table["accuracy"]).abs()).sum()
        / max(len(confidence), 1)
    )
    return ece, table


def confusion_figure(y_true, y_pred, labels, title: str):
    """The confusion matrix twice: counts, and each true label's row as shares of it (its
    recall on the diagonal), which a reader of an unbalanced test set can compare across
    labels."""
    size = 1.2 * len(labels) + 2.5
    figure, (counts, shares) = plt.subplots(1, 2, figsize=(2 * size, size))
    for axis, normalize, heading in (
        (counts, None, "rows"),
        (shares, "true", "share of each true label's rows"),
    ):
        ConfusionMatrixDisplay.from_predictions(
            y_true,
            y_pred,
            labels=list(labels),
            ax=axis,
            colorbar=False,
            cmap="Blues",
            normalize=normalize,
            values_format=None if normalize is None else ".2f",
        )
        axis.set_title(heading, fontsize="medium")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def reliability_figure(table: pd.DataFrame, ece: float, title: str):
    """Accuracy against mean confidence per bin, each point's size and label its row count,
    over a histogram of the rows per bin: a bin of one row is noise, and must look it."""
    figure, (curve, histogram) = plt.subplots(
        2, 1, figsize=(4.8, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    curve.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    largest = max(int(table["rows"].max()), 1) if len(table) else 1
    curve.plot(table["confidence"], table["accuracy"], color="tab:blue", linewidth=1)
    curve.scatter(
        table["confidence"],
        table["accuracy"],
        s=20 + 180 * table["rows"] / largest,
        color="tab:blue",
        zorder=3,
    )
    for confidence, accuracy, rows in zip(table["confidence"], table["accuracy"], table["rows"]):
        curve.annotate(
            f"n={rows:,}",
            (confidence, accuracy),
            textcoords="offset points",
            # Right of and below its point; left of the last one, which the edge would cut off.
            # (Only the last: a label left of a point at 0.85 sat under the point of 0.75.)
            xytext=(-10, 4) if confidence > 0.92 else (6, -10),
            ha="right" if confidence > 0.92 else "left",
            fontsize="x-small",
        )
    curve.set_ylabel("accuracy")
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1.05)
    curve.set_title(f"{title}\nECE {ece:.3f} (point size: rows in the bin)")
    histogram.bar(
        table["bin_low"],
        table["rows"],
        width=table["bin_high"] - table["bin_low"],
        align="edge",
        color="tab:blue",
        edgecolor="white",
    )
    histogram.set_xlabel("mean predicted probability (top class)")
    histogram.set_ylabel("rows")
    if len(table) and table["rows"].max() > 20 * table["rows"].min():
        histogram.set_yscale("log")  # else the small bins, the ones to doubt, do not show
        histogram.set_ylabel("rows (log)")
    figure.tight_layout()
    return figure


def top_features(estimator, count: int = 15) -> pd.DataFrame:
    """The ``count`` highest-weighted features per class of each linear model (empty for naive
    Bayes).
    """
    rows = []
    for model_name, pipeline in pipelines(estimator):
        clf = pipeline.named_steps["clf"]
        if not hasattr(clf, "coef_"):
            continue
        names = pipeline.named_steps["features"].get_feature_names_out()
        coef = np.asarray(clf.coef_)
        if coef.shape[0] == 1:  # binary: one row, positive for classes_[1]
            coef = np.vstack([-coef[0], coef[0]])
        for label, weights in zip(clf.classes_, coef):
            for rank, column in enumerate(np.argsort(-weights)[:count], start=1):
                rows.append(
                    {
                        "model": model_name,
                        "label": label,
                        "rank": rank,
                        "feature": names[column],
                        "weight": float(weights[column]),
                    }
                )
    return pd.DataFrame(rows, columns=["model", "label", "rank", "feature", "weight"])


def misclassified(
    frame: pd.DataFrame, predictions: pd.DataFrame, limit: int = MISCLASSIFIED_ROWS
) -> pd.DataFrame:
    """Wrong predictions, most confident first: the examples worth reading."""
    wrong = frame["label"].to_numpy() != predictions["label"].to_numpy()
    proba = predictions.filter(like="proba_").to_numpy()
    table = pd.DataFrame(
        {
            "id": frame["id"].to_numpy()[wrong],
            "target": frame["target"].to_numpy()[wrong],
            "text": frame["text"].to_numpy()[wrong],
            "label": frame["label"].to_numpy()[wrong],
            "predicted": predictions["label"].to_numpy()[wrong],
            "confidence": proba.max(axis=1)[wrong],
        }
    )
    return (
        table.sort_values("confidence", ascending=False, kind="stable")
        .head(limit)
        .reset_index(drop=True)
    )


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def model_card(facts: dict) -> str:
    """Markdown model card from the facts ``training.train`` gathered; numbers as logged."""
    config, metrics, labels = facts["config"], facts["metrics"], facts["labels"]
    headline = config["headline_metric"]
    low, high = facts["interval"]
    # "test", or for a model of few rows "oof": its estimate by cross-validation over all of them
    scored = facts.get("scored", "test")
    lines = [
        f"# Model card: {config['name']}",
        "",
        config["description"] or "A stance classifier trained with `stance train`.",
        "",
        "## Intended use",
        "",
        f"Labels the stance of a sentence toward a target as one of {', '.join(labels)}, with a "
        "probability per label. "
        f"Trained on {config['data']['format']} data ({_paths(config['data']['path'])}); it is "
        "meant for text of the same kind "
        + (
            "about the same targets."
            if config["model"]["strategy"] in PER_TARGET_STRATEGIES
            else "about targets like those it saw."
        )
        + " It is a research and analysis aid: read its errors (misclassified.json in the "
        "run) before relying on it.",
        "",
        "## Data",
        "",
        f"Rows read {facts['rows_read']}, kept {facts['rows_kept']}, rejected "
        f"{facts['rows_rejected']}. "
        + ", ".join(f"{name} {size}" for name, size in facts["splits"].items())
        + ".",
        "",
        "| file | sha256 | rows read |",
        "| --- | --- | ---: |",
        # A labels or bodies file adds fields to the rows of the file before it; they count there.
        *[
            f"| {f['path']} | {f['sha256']} | {f['rows_read'] or 'joined'} |"
            for f in facts["files"]
        ],
        "",
        "## Metrics",
        "",
        *(
            [
                f"Headline: test {headline} = {_fmt(metrics[f'test_{headline}'])} "
                f"(95 % bootstrap interval {_fmt(low)} to {_fmt(high)}, {BOOTSTRAP_SAMPLES} "
                "resamples of the test rows).",
            ]
            if scored == "test"
            else [
                f"Headline: cross-validated {headline} = {_fmt(metrics[f'oof_{headline}'])}, an "
                f"estimate from {facts['rows_kept']} rows, too few to hold any out: the mean over "
                f"{facts['cv']['repeats']} repeats of {facts['cv']['folds']}-fold cross-validation "
                "over every row (95 % bootstrap interval of the first repeat's out-of-fold "
                f"predictions {_fmt(low)} to {_fmt(high)}). The model was then fitted on every "
                "row.",
            ]
        ),
        "",
        "| metric | validation | test |" if scored == "test" else "| metric | cross-validated |",
        "| --- | ---: | ---: |" if scored == "test" else "| --- | ---: |",
    ]
    names = ["accuracy", "macro_f1"]
    names += [n for n in ("f_avg", "fnc_score") if f"{scored}_{n}" in metrics]
    names += [f"f1_{safe_name(label)}" for label in labels]  # as compute_metrics names them
    for name in names:
        if scored == "test":
            valid = metrics.get(f"valid_{name}")
            lines.append(
                f"| {name} | {_fmt(valid) if valid is not None else '-'} | "
                f"{_fmt(metrics[f'test_{name}'])} |"
            )
        else:
            lines.append(f"| {name} | {_fmt(metrics[f'oof_{name}'])} |")
    ece = _fmt(metrics[f"{scored}_ece"])
    lines += [
        f"| ece (top-class calibration) | - | {ece} |"
        if scored == "test"
        else f"| ece (top-class calibration) | {ece} |",
        "",
        *_by_target(facts),
        "## Known limits",
        "",
        *[f"- {limit}" for limit in _limits(facts)],
        "",
        "## Training",
        "",
        f"Strategy {config['model']['strategy']}, classifier {config['model']['classifier']} "
        f"with {config['model']['clf'] or 'its defaults'}, features "
        f"{', '.join(config['features'])}, seed {config['seed']}"
        + (
            ", refitted on train + validation before the test evaluation"
            if config["model"]["refit_on_valid"]
            else ""
        )
        + (
            f", starting from {config['model']['init_from']} (its probabilities are the `prior` "
            f"features, weight {config['model']['prior_weight']})"
            if config["model"].get("init_from")
            else ""
        )
        + f". Code at git commit {facts['git']['git_commit']} (uncommitted changes: "
        f"{facts['git']['git_dirty']}).",
        "",
        "Versions: "
        + ", ".join(f"{name} {version}" for name, version in facts["versions"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def _by_target(facts: dict) -> list[str]:
    """Macro-F1 per test target, as logged; nothing for one target or too many to log."""
    metrics, rows = facts["metrics"], facts.get("test_target_rows") or {}
    scores = {
        target: metrics.get(f"test_macro_f1_target_{safe_name(target)[:200]}") for target in rows
    }
    if len(rows) < 2 or None in scores.values():
        return []
    lines = [
        "## By target",
        "",
        "Macro-F1 over the labels present in each target's rows.",
        "",
        "| target | test rows | test macro_f1 | validation macro_f1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for target in sorted(rows):
        valid = metrics.get(f"valid_macro_f1_target_{safe_name(target)[:200]}")
        lines.append(
            f"| {target} | {rows[target]} | {_fmt(scores[target])} | "
            f"{_fmt(valid) if valid is not None else '-'} |"
        )
    return [*lines, ""]


def _limits(facts: dict) -> list[str]:
    metrics, labels, config = facts["metrics"], facts["labels"], facts["config"]
    scored = facts.get("scored", "test")
    where = "test" if scored == "test" else "cross-validated"
    limits = []
    for label in labels:
        f1 = metrics[f"{scored}_f1_{safe_name(label)}"]  # as compute_metrics names it
        if f1 < 0.3:
            limits.append(f"{label} is rarely recognised: {where} F1 {_fmt(f1)}.")
    if scored == "oof":
        low, high = facts["interval"]
        limits.append(
            f"Trained on {facts['rows_kept']} rows: the estimate could lie anywhere from "
            f"{_fmt(low)} to {_fmt(high)}, and a model of more rows will differ."
        )
    elif facts["splits"].get("test", 0) < 300:
        low, high = facts["interval"]
        if high - low < 1e-9:
            # Every resample scoring the same is a sign of too few rows, not of certainty.
            limits.append(
                f"The test split is small ({facts['splits']['test']} rows) and every bootstrap "
                f"resample scores {_fmt(low)}: too few rows to say how far the headline would move "
                "on new data."
            )
        else:
            limits.append(
                f"The test split is small ({facts['splits']['test']} rows): the headline could lie "
                f"anywhere from {_fmt(low)} to {_fmt(high)}."
            )
    if metrics[f"{scored}_ece"] > 0.1:
        limits.append(
            f"Probabilities are not well calibrated (ECE {_fmt(metrics[f'{scored}_ece'])}); treat "
            "them as scores."
        )
    if config["model"]["strategy"] in UNSEEN_TARGETS_GET:
        limits.append(
            "Rows on a target unseen in training "
            f"{UNSEEN_TARGETS_GET[config['model']['strategy']]}."
        )
    if set(labels) == FNC_LABELS:
        limits.append(
            "The FNC-1 score rewards related/unrelated decisions; read macro-F1 and per-class F1 "
            "for agree/disagree."
        )
    if "embeddings" in config["features"]:
        cues = "n-grams, lexicons and a frozen sentence encoder"
    elif "static_embeddings" in config["features"]:
        cues = "n-grams, lexicons and word-piece vectors distilled from a sentence encoder"
    else:
        cues = "n-grams and lexicons"
    limits.append(
        f"Stance is judged sentence by sentence from surface cues ({cues}); irony, quotation of "
        "opponents and world knowledge are beyond it."
    )
    return limits


def _paths(path: str | list) -> str:
    return path if isinstance(path, str) else ", ".join(path)
