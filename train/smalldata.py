"""Quality from few labels. Below ``split.small_data_below`` rows, `stance train` holds nothing
out: every row is predicted by models that did not see it, in folds stratified by label over
distinct texts (a text's copies stay in one fold), repeated with other seeds. The estimate is the
mean over repeats of the pooled out-of-fold metric; its interval is a bootstrap over the rows of
the first repeat, which also gives the run's report. The logged model is then fitted on every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from train.classifiers import rows_needed_per_label
from train.config import Config, SplitConfig
from train.crossval import folds
from train.duplicates import copy_groups
from train.errors import DataError
from train.fitting import fit_stance_model
from train.metrics import bootstrap_interval, compute_metrics

ROWS = "oof"  # the name of the estimate's rows in metrics and logged predictions


def applies(rows: pd.DataFrame, split: SplitConfig) -> bool:
    """Whether ``rows`` are few enough to be cross-validated rather than split: below
    ``split.small_data_below`` and without the dataset's own splits."""
    return bool(rows["split"].isna().all()) and len(rows) < split.small_data_below


def fold_count(frame: pd.DataFrame, config: Config) -> int:
    """``split.small_data_folds``, or fewer where a label has fewer distinct texts: each fold must
    hold out at least one row of every label and train on the others."""
    _, codes = copy_groups(frame["text"])
    # The texts that carry each label (a copy of a text under another target counts once).
    texts = pd.Series(codes).groupby(frame["label"].to_numpy()).nunique().sort_values()
    rarest, fewest = texts.index[0], int(texts.iloc[0])
    if fewest < 2:
        raise DataError(
            f"{len(frame)} labelled rows are too few to estimate quality: label {rarest!r} has "
            f"{fewest} distinct text, and cross-validation needs 2 of each label. Annotate more "
            f"{rarest!r} rows (or leave the label out of data.labels)."
        )
    return min(config.split.small_data_folds, fewest)


def plan(config: Config, frame: pd.DataFrame) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The folds of every repeat, checked before any run exists: each fold trains on every
    label. Folds are drawn over distinct texts and stratified by the label of each text's first
    row, so a label that shares its texts with rows of another can end up held out whole."""
    k, labels = fold_count(frame, config), sorted(set(frame["label"]))
    needed = rows_needed_per_label(config.model.classifier, dict(config.model.clf), config.seed)
    planned = []
    for repeat in range(config.split.small_data_repeats):
        # Each repeat its own folds; the modulo keeps the seed in numpy's range.
        repeat_folds = list(folds(frame, k, "none", (config.seed + repeat) % 2**32))
        for train_rows, _ in repeat_folds:
            counts = frame["label"].iloc[train_rows].value_counts()
            if missing := [label for label in labels if label not in counts]:
                raise DataError(
                    f"{len(frame)} labelled rows are too few to cross-validate: the rows labelled "
                    f"{missing[0]!r} share their texts with rows of other labels (copies of a "
                    "text stay in one fold), so a fold would train without any. Annotate more "
                    f"{missing[0]!r} rows with texts of their own."
                )
            _check_rows_per_label(config, frame.iloc[train_rows], needed, len(frame))
        planned.append(repeat_folds)
    return planned


def _check_rows_per_label(config: Config, rows: pd.DataFrame, needed: int, total: int) -> None:
    """Every model a fold fits gets ``needed`` rows of each label it sees: the joint model all
    the fold's rows, and under ``per_target`` each target with a model of its own (as many rows
    as ``model.min_target_rows`` and two labels) its own rows."""
    groups = [(None, rows["label"].value_counts())]
    if config.model.strategy == "per_target":
        for target, own in rows.groupby("target", sort=True)["label"]:
            if len(own) >= config.model.min_target_rows and own.nunique() >= 2:
                groups.append((target, own.value_counts()))
    for target, counts in groups:
        if (counts >= needed).all():
            continue
        label = counts.index[counts < needed][0]
        whose = "" if target is None else f" of target {target!r} (a model of its own)"
        raise DataError(
            f"{total} labelled rows are too few to cross-validate model.classifier "
            f"{config.model.classifier!r}: it needs {needed} rows of each label among those it "
            "is fitted on (the SVMs hold some out to calibrate their probabilities), and a fold "
            f"would train on {counts[label]} labelled {label!r}{whose}. Annotate more "
            f"{label!r} rows, or, for linear_svm and nbsvm, set model.clf.calibration = "
            '"softmax" (uncalibrated probabilities).'
        )


@dataclass
class Estimate:
    metrics: dict[str, float]  # oof_<metric>: mean over repeats; headline interval and sd
    predictions: pd.DataFrame  # the first repeat: id, label, predicted, proba_<LABEL>
    folds: int
    repeats: int


def estimate(config: Config, frame: pd.DataFrame, planned=None, bar=None) -> Estimate:
    """Cross-validate ``config`` over every row of ``frame`` in the folds of :func:`plan`
    (``planned``, else planned here). ``bar`` counts the fits."""
    planned = planned or plan(config, frame)
    k, repeats = len(planned[0]), len(planned)
    labels, truth = list(config.labels), frame["label"]
    per_repeat, first = [], None
    for repeat_folds in planned:
        predicted = np.empty(len(frame), dtype=object)
        proba = np.zeros((len(frame), len(labels)))
        for train_rows, held_out in repeat_folds:
            model = fit_stance_model(config, frame.iloc[train_rows])
            out = model.predict(frame.iloc[held_out])
            predicted[held_out] = out["label"].to_numpy()
            proba[held_out] = out[[f"proba_{label}" for label in labels]].to_numpy()
            if bar is not None:
                bar.update(1)
        per_repeat.append(compute_metrics(truth, predicted, labels, frame["target"]))
        if first is None:
            first = pd.DataFrame(
                {"id": frame["id"].to_numpy(), "label": truth.to_numpy(), "predicted": predicted}
            ).join(pd.DataFrame(proba, columns=[f"proba_{label}" for label in labels]))
    metrics = {
        f"{ROWS}_{name}": float(np.mean([m[name] for m in per_repeat])) for name in per_repeat[0]
    }
    headline = config.headline_metric
    low, high = bootstrap_interval(truth, first["predicted"], labels, headline, config.seed)
    metrics |= {
        f"{ROWS}_{headline}_ci_low": low,
        f"{ROWS}_{headline}_ci_high": high,
        f"{ROWS}_{headline}_sd_over_repeats": float(np.std([m[headline] for m in per_repeat])),
    }
    return Estimate(metrics, first, k, repeats)
