"""`stance train`, top to bottom: config -> data -> model -> metrics -> report -> MLflow.

Read :func:`train` in one go; each step is one call into the module that owns it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from train import progress, report, schema, scoring, smalldata, store, tracking
from train.config import PER_TARGET_STRATEGIES, Config
from train.data import (
    check_training_labels,
    load_dataset,
    near_duplicate_targets,
    split_dataset,
)
from train.duplicates import repeated_texts
from train.fitting import fit_stance_model
from train.models import (
    StanceModel,
    check_parameters,
    runtime_versions,
)
from train.sources import data_root


@dataclass
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    headline: str
    model: StanceModel
    rows_rejected: int


def train(
    config: Config,
    data_dir: str | Path | None = None,
    log=print,
    extra_tags: dict | None = None,
    show_progress: bool | None = False,
) -> TrainResult:
    """Train, evaluate and log one experiment. Returns the run id and every metric.

    With ``show_progress``, a bar on stderr counts the stages (reading, fitting, scoring each
    split, logging), named as each begins, with the lines of ``log`` above it."""
    stages = [
        "reading the data",
        "fitting",
        "scoring validation",
        *(["refitting on train + validation"] if config.model.refit_on_valid else []),
        "scoring test",
        "logging the run",
    ]
    bar = progress.bar(show_progress, len(stages), "stages", stages[0], log)

    def stage(name: str) -> None:
        bar.update(1)
        bar.set_description_str(name)

    try:
        result = _train(config, data_dir, bar.log, extra_tags, stage)
        bar.update(1)  # the last stage, done
        return result
    finally:
        bar.close()


def _train(config: Config, data_dir, log, extra_tags, stage) -> TrainResult:
    check_parameters(config)  # a hyperparameter no fit accepts stops here, before data or a run
    store.configure()  # and so does a store that cannot be opened
    root = data_root(data_dir)
    random.seed(config.seed)
    np.random.seed(config.seed)

    # 1. Data: load, validate every row, split; few rows are not split (train/smalldata.py).
    data = load_dataset(config.data, root)
    if smalldata.applies(data.rows, config.split):
        return _train_small(config, data, root, log, extra_tags, stage)
    splits = split_dataset(data.rows, config.split, config.seed)
    log(
        f"data: {data.rows_read} rows read, {len(data.rows)} kept, {len(data.rejects)} rejected; "
        + ", ".join(f"{name} {len(frame)}" for name, frame in splits.items())
    )
    repeats = repeated_texts(splits)
    if repeats["repeated_text_rows"] or repeats["near_copy_rows"]:
        shared = repeats["valid_rows_with_a_train_text"] + repeats["test_rows_with_a_train_text"]
        log(
            f"data: {repeats['repeated_text_rows']} rows repeat the text and target of an earlier "
            "row (case, spacing, punctuation, emoji, URLs and mentions aside), "
            f"{repeats['near_copy_rows']} rows are near copies of another; "
            + (
                f"{repeats['valid_rows_with_a_train_text']} validation and "
                f"{repeats['test_rows_with_a_train_text']} test rows share a text with train "
                "(the dataset's own splits)"
                if shared
                else "every text, its copies and near copies are in one split"
            )
        )
    # Where each target gets its own weights or its own split, one target spelt two ways
    # silently becomes two; elsewhere (FNC-1's headlines) spellings are only text.
    if config.model.strategy in PER_TARGET_STRATEGIES or config.split.method == "by_target":
        for warning in near_duplicate_targets(data.rows["target"]):
            log(f"warning: {warning}")

    # A data problem stops here, before a run exists: a run that fails on its data is noise in
    # `stance runs`.
    check_training_labels(config.labels, splits["train"]["label"])
    versions = runtime_versions()
    fitted = {}  # what is kept on disk if the store fails after the fit
    with tracking.command_run(config.name, fitted, extra_tags) as run_id:
        tracking.log_config(config)
        tracking.log_environment(versions, config.seed)
        tracking.log_data(data, splits, root, repeats)

        # 2. Model: the pipeline the config describes, fitted on train only.
        # The bar names what is being fitted: on a large dataset this stage is the long one.
        stage(f"fitting {' + '.join(config.features)} -> {config.model.classifier}")
        labels = config.labels
        started = time.perf_counter()
        stance_model = fitted["model"] = fit_stance_model(config, splits["train"], versions)
        train_seconds = time.perf_counter() - started
        log(f"fit: {train_seconds:.1f}s on {len(splits['train'])} rows")

        # 3. Evaluate on validation, then (optionally refitted on train + validation) on test.
        metrics = {"train_seconds": train_seconds}
        for split in ("valid", "test"):
            if split == "test" and config.model.refit_on_valid:
                stage("refitting on train + validation")
                started = time.perf_counter()
                stance_model = fitted["model"] = fit_stance_model(
                    config,
                    pd.concat([splits["train"], splits["valid"]], ignore_index=True),
                    versions,
                )
                metrics["refit_seconds"] = time.perf_counter() - started
                log(f"refit on train + valid: {metrics['refit_seconds']:.1f}s")
            stage("scoring validation" if split == "valid" else "scoring test")
            frame = splits[split]
            predictions = stance_model.predict(frame)
            predicted = predictions["label"].to_numpy()
            metrics |= scoring.score(
                split,
                frame["label"],
                predicted,
                labels,
                frame["target"],
                # the interval of the headline, on test only: validation chose the settings
                headline=config.headline_metric if split == "test" else None,
                seed=config.seed,
            )
            # The probabilities too: `stance cascade` chooses its threshold from them.
            rows = pd.concat(
                [
                    pd.DataFrame(
                        {"id": frame["id"], "label": frame["label"], "predicted": predicted}
                    ),
                    predictions.filter(like="proba_").set_axis(frame.index),
                ],
                axis=1,
            )
            scoring.log_scores(
                split,
                f"{config.name}: {split}",
                frame["label"],
                predicted,
                labels,
                frame["target"],
                rows,
            )

        # 4. The report: calibration, an interval for the headline, weights, errors, model card.
        stage("logging the run")
        test = splits["test"]
        ece, bins = report.calibration(
            test["label"], predictions.filter(like="proba_").to_numpy(), labels
        )
        metrics["test_ece"] = ece
        interval = (
            metrics[f"test_{config.headline_metric}_ci_low"],
            metrics[f"test_{config.headline_metric}_ci_high"],
        )
        tracking.log_metrics(metrics)
        facts = _facts(config, data, metrics, interval, versions, fitted["tags"])
        facts |= {
            "splits": {name: len(frame) for name, frame in splits.items()},
            "test_target_rows": test["target"].value_counts().to_dict(),
        }
        _log_report(config, stance_model, facts, bins, ece, test, predictions, "test")

        # 5. The model, with its labels, config and metrics inside.
        stance_model.metrics = metrics
        tracking.log_model(
            stance_model, splits["train"][["text", "target"]].head(3).reset_index(drop=True)
        )

    headline = f"test_{config.headline_metric}"
    return TrainResult(run_id, metrics, headline, stance_model, len(data.rejects))


def _train_small(config: Config, data, root, log, extra_tags, stage) -> TrainResult:
    """`stance train` on fewer than ``split.small_data_below`` rows: quality estimated by repeated
    cross-validation over every row, reported as the headline, and the model fitted on all."""
    rows = data.rows.reset_index(drop=True)
    repeats = repeated_texts({"train": rows, "valid": rows.iloc[0:0], "test": rows.iloc[0:0]})
    check_training_labels(config.labels, rows["label"])
    planned = smalldata.plan(config, rows)  # a fold that cannot train stops here, before a run
    k, r = len(planned[0]), len(planned)
    log(
        f"data: {data.rows_read} rows read, {len(rows)} kept, {len(data.rejects)} rejected; "
        f"fewer than {config.split.small_data_below} (split.small_data_below), so none is held "
        f"out: {k}-fold cross-validation repeated {r} times over all of them estimates quality, "
        "and the model is fitted on every row"
    )
    versions = runtime_versions()
    fitted = {}
    tags = {schema.SMALL_DATA: f"{k} folds x {r} repeats", **(extra_tags or {})}
    with tracking.command_run(config.name, fitted, tags) as run_id:
        tracking.log_config(config)
        tracking.log_environment(versions, config.seed)
        tracking.log_data(data, {"all": rows}, root, repeats)

        stage(f"cross-validating: {k} folds x {r} repeats")
        estimate = smalldata.estimate(config, rows, planned)
        metrics = dict(estimate.metrics)
        stage("fitting on every row")
        started = time.perf_counter()
        stance_model = fitted["model"] = fit_stance_model(config, rows, versions)
        metrics["train_seconds"] = time.perf_counter() - started

        stage("scoring out-of-fold predictions")
        oof = estimate.predictions
        scoring.log_scores(
            smalldata.ROWS,
            f"{config.name}: cross-validated",
            rows["label"],
            oof["predicted"].to_numpy(),
            config.labels,
            rows["target"],
            oof,
        )
        proba = oof.filter(like="proba_")
        ece, bins = report.calibration(rows["label"], proba.to_numpy(), config.labels)
        metrics[f"{smalldata.ROWS}_ece"] = ece
        tracking.log_metrics(metrics)

        stage("logging the run")
        headline = f"{smalldata.ROWS}_{config.headline_metric}"
        interval = (metrics[f"{headline}_ci_low"], metrics[f"{headline}_ci_high"])
        facts = _facts(config, data, metrics, interval, versions, fitted["tags"])
        facts |= {
            "splits": {"none held out; cross-validated and fitted": len(rows)},
            "scored": smalldata.ROWS,
            "cv": {"folds": k, "repeats": r},
        }
        predicted = proba.set_axis(rows.index).assign(label=oof["predicted"].to_numpy())
        _log_report(config, stance_model, facts, bins, ece, rows, predicted, smalldata.ROWS)
        stance_model.metrics = metrics
        tracking.log_model(stance_model, rows[["text", "target"]].head(3).reset_index(drop=True))
    return TrainResult(run_id, metrics, headline, stance_model, len(data.rejects))


def _facts(config: Config, data, metrics, interval, versions, git) -> dict:
    """What the model card is written from, as every training gathers it."""
    return {
        "config": config.to_dict(),
        "labels": config.labels,
        "metrics": metrics,
        "interval": interval,
        "versions": versions,
        "rows_read": data.rows_read,
        "rows_kept": len(data.rows),
        "rows_rejected": len(data.rejects),
        "git": git,
        "files": [
            {"path": f.path, "sha256": f.sha256, "rows_read": f.rows_read} for f in data.files
        ],
    }


def _log_report(config, stance_model, facts, bins, ece, scored, predictions, rows: str) -> None:
    """The report of the ``rows`` predictions (test, or out-of-fold): reliability, weights,
    errors and the model card."""
    title = "test" if rows == "test" else "cross-validated"
    figure = report.reliability_figure(bins, ece, f"{config.name}: {title}")
    try:
        tracking.log_report(
            figure,
            bins,
            report.top_features(stance_model.estimator),
            report.misclassified(scored, predictions),
            report.model_card(facts),
            rows=rows,
        )
    finally:
        plt.close(figure)
