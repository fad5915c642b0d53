"""`stance train`, top to bottom: config -> data -> model -> metrics -> report -> MLflow.

Read :func:`train` in one go; each step is one call into the module that owns it.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from features.base import TARGET, TEXT
from features.pipeline import build_features
from train import progress, report, scoring, store, tracking
from train.artifact import open_model
from train.config import PER_TARGET_STRATEGIES, Config
from train.data import (
    check_training_labels,
    load_dataset,
    near_duplicate_targets,
    split_dataset,
)
from train.duplicates import repeated_texts
from train.errors import ConfigError, ModelError
from train.models import (
    StanceModel,
    build_model,
    check_parameters,
    fit_model,
    needs_target,
    runtime_versions,
)
from train.sources import data_root


def fit_stance_model(
    config: Config, frame: pd.DataFrame, versions: dict | None = None
) -> StanceModel:
    """Fit the experiment's estimator on ``frame`` and wrap it with its labels and settings."""
    check_training_labels(config.labels, frame["label"])
    weights = frame["weight"].to_numpy() if config.data.use_weights else None
    prior = prior_model(config.model.init_from) if config.model.init_from else None
    try:
        estimator = fit_model(build_model(config, prior), frame, weights)
    except ValueError as error:
        # By scikit-learn's contract, feature steps and classifiers check their
        # parameters in fit, so a bad value in the experiment surfaces here.
        reason = str(error).rstrip(". ")
        step = _failing_feature_step(config, frame)
        where = (
            f"[features.{step}] in the experiment file and any {step}__... overrides"
            if step
            else ("[model.clf] and [features.*] in the experiment file and any --set overrides")
        )
        raise ConfigError(
            f"The model of {config.name!r} could not be fitted: "
            f"{f'feature step {step!r}: ' if step else ''}{reason}. Check {where}."
        ) from error
    return StanceModel(
        estimator,
        config.labels,
        config.to_dict(),
        needs_target(config, prior),
        dict(config.model.label_weights),
        versions=versions or {},
    )


@functools.lru_cache(maxsize=2)
def prior_model(uri: str) -> StanceModel:
    """The model ``model.init_from`` names, loaded once per process (a search fits many trials
    on it), built from its model folder with the checks `stance predict` makes."""
    try:
        model = open_model(uri).model
    except ModelError as error:
        raise ModelError(f"model.init_from = {uri!r}: {error}") from None
    if not isinstance(model, StanceModel):
        raise ConfigError(
            f"model.init_from = {uri!r} names a cascade; start from one of its two training runs."
        )
    return model


def _failing_feature_step(config: Config, frame: pd.DataFrame) -> str | None:
    """The first feature step that cannot be fitted alone on ``frame``, to name it in the error.

    Only called once fitting has failed: a FeatureUnion's error does not say
    which step raised it. None when every step fits alone (the classifier, or
    one target's rows under a per-target strategy).
    """
    for name, params in config.features.items():
        try:
            build_features({name: dict(params)}).fit(frame[[TEXT, TARGET]])
        except ValueError:
            return name
    return None


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

    # 1. Data: load, validate every row, split.
    data = load_dataset(config.data, root)
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
        facts = {
            "config": config.to_dict(),
            "labels": labels,
            "metrics": metrics,
            "interval": interval,
            "versions": versions,
            "rows_read": data.rows_read,
            "rows_kept": len(data.rows),
            "rows_rejected": len(data.rejects),
            "splits": {name: len(frame) for name, frame in splits.items()},
            "git": fitted["tags"],
            "test_target_rows": test["target"].value_counts().to_dict(),
            "files": [
                {"path": f.path, "sha256": f.sha256, "rows_read": f.rows_read} for f in data.files
            ],
        }
        figure = report.reliability_figure(bins, ece, f"{config.name}: test")
        tracking.log_report(
            figure,
            bins,
            report.top_features(stance_model.estimator),
            report.misclassified(test, predictions),
            report.model_card(facts),
        )
        plt.close(figure)

        # 5. The model, with its labels, config and metrics inside.
        stance_model.metrics = metrics
        tracking.log_model(
            stance_model, splits["train"][["text", "target"]].head(3).reset_index(drop=True)
        )

    headline = f"test_{config.headline_metric}"
    return TrainResult(run_id, metrics, headline, stance_model, len(data.rejects))
