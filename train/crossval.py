"""`stance cv`: k-fold cross-validation of one configuration on the training split.

This is how configurations are compared without spending the validation split or
touching test: every fold trains on the rest of train and predicts its held-out
rows, and the run reports both the mean and spread of each metric over folds
(``cv_*``) and the metrics of all out-of-fold predictions pooled (``oof_*``).
Folds can keep related rows together, so that near-copies (tweets sharing a
hashtag, stances on one article body) do not sit on both sides of a split.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold

from train import progress, schema, store, tracking, workers
from train.config import GROUPINGS, Config
from train.data import check_training_labels, load_dataset, split_dataset
from train.duplicates import copy_groups
from train.errors import ConfigError, DataError
from train.fitting import fit_stance_model
from train.metrics import compute_metrics
from train.models import check_parameters
from train.sources import data_root

HASHTAG = re.compile(r"#\w+")


def default_grouping(config: Config) -> str:
    """Folds like the experiment's own split: whole targets held out when it splits by
    target (a cross-target experiment), else stratified by label."""
    return "target" if config.split.method == "by_target" else "none"


def hashtag_groups(texts: pd.Series) -> np.ndarray:
    """Each text's most widespread hashtag, as its fold group.

    A hashtag on more than half the rows (a collection tag such as SemEval's
    #SemST) says nothing about which tweets are related, so it is ignored; a
    text without any other hashtag is a group of its own.

    One hashtag per text, not every tweet linked to every other that shares any
    hashtag: on SemEval-2016's training split those links join 974 of 2,618
    tweets into one group, which alone would make one of five folds hold 37 %
    of the rows. A tweet with two popular hashtags can still link two folds.
    """
    tags = [sorted({t.lower() for t in HASHTAG.findall(text)}) for text in texts]
    counts = Counter(t for row in tags for t in row)
    common = {t for t, n in counts.items() if n > len(tags) / 2}
    # A text without a hashtag of its own is a group with every copy of it, named by its first row.
    first, codes = copy_groups(texts)
    groups = []
    for position, row in enumerate(tags):
        kept = [t for t in row if t not in common]
        groups.append(
            max(kept, key=lambda t: (counts[t], t)) if kept else f"\x00row{first[codes[position]]}"
        )
    return np.asarray(groups, dtype=object)


def folds(
    frame: pd.DataFrame, k: int, grouping: str, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Train/held-out row positions for each of ``k`` folds.

    ``none``: stratified by label. ``target``: whole targets held out (cross-target).
    ``group``: the data's group column (FNC-1 bodies), ``hashtag``: see
    :func:`hashtag_groups`; both stratified by label as far as the groups allow.
    """
    if grouping not in GROUPINGS:
        raise ConfigError(f"Unknown grouping {grouping!r}; expected one of {list(GROUPINGS)}.")
    check_counts(k, jobs=1)
    if grouping == "none":
        # Folds are drawn over distinct texts; every copy of a text follows it (see
        # duplicates.copy_groups).
        first, codes = copy_groups(frame["text"])
        labels = frame["label"].iloc[first]
        smallest = int(labels.value_counts().min())
        if smallest < k:
            raise ConfigError(
                f"{k} folds stratified by label need at least {k} rows of each label; the rarest "
                f"has {smallest} (copies of one text counted once). Use fewer folds."
            )
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(first, labels)
        return (
            (np.flatnonzero(~held), np.flatnonzero(held))
            for held in (np.isin(codes, texts) for _, texts in splits)
        )
    groups = (
        hashtag_groups(frame["text"])
        if grouping == "hashtag"
        else frame[grouping].to_numpy(dtype=object)
    )
    distinct = len(set(groups))
    if distinct < k:
        raise ConfigError(
            f"{k} folds grouped by {grouping} need at least {k} groups; the training split has "
            f"{distinct}. Use fewer folds."
        )
    if grouping == "target":
        return GroupKFold(n_splits=k).split(frame, groups=groups)
    return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
        frame, frame["label"], groups
    )


def cross_validate(
    config: Config,
    frame: pd.DataFrame,
    k: int,
    grouping: str = "none",
    log=None,
    jobs: int = 1,
    bar=None,
) -> tuple[list[dict], np.ndarray]:
    """Metrics of each fold's held-out rows, and every row's out-of-fold label.

    With ``jobs > 1`` the first fold runs here and the others in forked worker
    processes: by then every text has been through the first fold's training or
    held-out rows, so workers share its sentence embeddings instead of encoding
    again. Each fold's result does not depend on where it ran.
    """
    out_of_fold = np.empty(len(frame), dtype=object)
    per_fold = []
    splits = list(folds(frame, k, grouping, config.seed))

    def record(number, train_rows, held_out_rows, predicted, seconds):
        out_of_fold[held_out_rows] = predicted
        per_fold.append(
            compute_metrics(frame["label"].iloc[held_out_rows], predicted, config.labels)
        )
        if log:  # folds of a large dataset take minutes each
            name = config.headline_metric
            log(
                f"fold {number}/{k}: {name} {per_fold[-1][name]:.4f}, {len(train_rows)} rows "
                f"fitted, {seconds:.1f}s"
            )
        if bar is not None:
            bar.update(1)

    # The config does not pickle, so folds run in parallel only where workers are forked.
    parallel = jobs > 1 and workers.can_fork()
    for number, (train_rows, held_out_rows) in enumerate(
        splits[:1] if parallel else splits, start=1
    ):
        record(
            number,
            train_rows,
            held_out_rows,
            *_fit_fold(config, frame, train_rows, held_out_rows, number),
        )
    if parallel:
        # Each worker is sent a fold number; it inherits the config, the rows and the folds.
        with workers.pool(min(jobs, k - 1), (config, frame, splits)) as pool:
            futures = [pool.submit(_fit_shared_fold, index) for index in range(1, k)]
            for index, future in enumerate(futures, start=1):
                record(index + 1, *splits[index], *future.result())
    return per_fold, out_of_fold


def _fit_shared_fold(index: int) -> tuple[np.ndarray, float]:
    config, frame, splits = workers.shared()
    return _fit_fold(config, frame, *splits[index], index + 1)


def _fit_fold(
    config: Config,
    frame: pd.DataFrame,
    train_rows: np.ndarray,
    held_out_rows: np.ndarray,
    number: int,
) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    try:
        model = fit_stance_model(config, frame.iloc[train_rows])
    except DataError as error:  # grouped folds can leave every row of a rare label in one fold
        raise DataError(f"Cross-validation fold {number}: {error}") from None
    predicted = model.predict(frame.iloc[held_out_rows])["label"].to_numpy()
    return predicted, time.perf_counter() - started


def summarise(per_fold: list[dict]) -> dict[str, float]:
    """Mean of each metric over folds, and its standard deviation as ``<name>_std``."""
    names = per_fold[0].keys()
    summary = {name: float(np.mean([m[name] for m in per_fold])) for name in names}
    return summary | {f"{name}_std": float(np.std([m[name] for m in per_fold])) for name in names}


@dataclass
class CVResult:
    run_id: str
    headline: str
    folds: int
    grouping: str
    per_fold: list[dict]
    metrics: dict[str, float]  # cv_* (mean, _std over folds) and oof_* (pooled)


def check_counts(k: int | None, jobs: int) -> None:
    """Refuse impossible fold and worker counts before any data is read."""
    if k is not None and k < 2:
        raise ConfigError(f"Cross-validation needs at least 2 folds, got {k}.")
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}.")


def run_cv(
    experiment: str | Path,
    k: int = 5,
    grouping: str | None = None,
    overrides: list[str] = (),
    data_dir: str | None = None,
    log=print,
    jobs: int = 1,
    show_progress: bool | None = False,
) -> CVResult:
    """Cross-validate an experiment on its training split and log the result as an MLflow run."""
    check_counts(k, jobs)
    config = Config.from_toml(experiment, list(overrides))
    check_parameters(config)
    store.configure()  # a store that cannot be opened stops the command before the data is read
    grouping = grouping or default_grouping(config)
    root = data_root(data_dir)
    data = load_dataset(config.data, root)
    frame = split_dataset(data.rows, config.split, config.seed)["train"]
    check_training_labels(config.labels, frame["label"])  # before a run exists
    scheme = {
        "none": "stratified by label",
        "target": "grouped by target",
        "group": "grouped by the data's group column",
        "hashtag": "grouped by hashtag",
    }
    log(
        f"data: {len(frame)} training rows, {k} folds ({scheme.get(grouping, grouping)}); the "
        "validation and test rows are left out"
    )

    started = time.perf_counter()
    results = {}  # what is kept on disk if the store fails after the folds
    with tracking.command_run(config.name, results, {schema.CV: f"{k}-fold, {grouping}"}) as run_id:
        tracking.log_config(config)
        tracking.log_data(data, {"train": frame}, root)
        bar = progress.bar(show_progress, k, "folds", "cross-validating", log)
        try:
            per_fold, out_of_fold = cross_validate(config, frame, k, grouping, bar.log, jobs, bar)
        finally:
            bar.close()
        predictions = results["predictions"] = pd.DataFrame(
            {"id": frame["id"], "label": frame["label"], "predicted": out_of_fold}
        )
        pooled = compute_metrics(frame["label"], out_of_fold, config.labels, frame["target"])
        metrics = {f"cv_{name}": value for name, value in summarise(per_fold).items()}
        metrics |= {f"oof_{name}": value for name, value in pooled.items()}
        metrics["cv_seconds"] = time.perf_counter() - started
        results["metrics"] = metrics | {
            f"fold_{number}_{name}": value
            for number, fold in enumerate(per_fold, start=1)
            for name, value in fold.items()
        }
        tracking.log_metrics(metrics)
        tracking.log_fold_metrics(per_fold)
        tracking.log_predictions("oof", predictions)
    return CVResult(run_id, config.headline_metric, k, grouping, per_fold, metrics)
