"""`stance evaluate`: a saved model scored on labelled rows it has not been trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from train import schema, scoring, smalldata, store, tracking
from train.artifact import open_model
from train.config import Config, DataConfig
from train.data import load_dataset, split_dataset
from train.errors import ConfigError, DataError
from train.metrics import (
    labels_present,
    metric_names,
    report_text,
)
from train.sources import data_root
from train.tables import COLUMN_OPTIONS, ColumnNames, Table, format_of, separator_hint

# --------------------------------------------------------------------------- `stance evaluate`

EVALUATION_SPLITS = ("train", "valid", "test", "all")


@dataclass
class EvaluationResult:
    run_id: str
    metrics: dict[str, float]
    headline: str
    report: str
    rows_read: int
    rows_rejected: int


@dataclass(frozen=True)
class LabelledInput:
    """How to read gold labels from a table: the column names (a field without one reads the
    column of its own name; an ``id`` column is used where there is one), or one target for
    every row, and the bad-row policy (None: ``error``). An experiment file names all of these
    itself."""

    columns: ColumnNames = ColumnNames()
    target: str | None = None
    input_format: str | None = None
    on_bad_rows: str | None = None


def _check_options(
    source: str, columns: LabelledInput, split: str | None, data_dir: str | None
) -> None:
    """Refuse options where they would be ignored, rather than ignore them."""
    if source.endswith(".toml"):
        flags = {
            "--target": "target",
            "--input-format": "input_format",
            "--on-bad-rows": "on_bad_rows",
        }
        given = columns.columns.options_given() + [
            flag for flag, name in flags.items() if getattr(columns, name) is not None
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)} describe a table; an experiment file names its own columns "
                f"and bad-row policy in [data]. Leave {given[0]} out, or pass the data file itself."
            )
        if split is not None and split not in EVALUATION_SPLITS:
            raise ConfigError(f"split must be one of {list(EVALUATION_SPLITS)}, found {split!r}.")
    elif split is not None or data_dir is not None:
        raise ConfigError(
            "--split and --data-dir choose the rows of an experiment file; a table is scored "
            "whole. Leave them out, or pass an experiment file."
        )
    else:
        columns.columns.check_one_target(columns.target)


def evaluate_model(
    model: str,
    source: str,
    columns: LabelledInput = LabelledInput(),
    split: str | None = None,
    data_dir: str | None = None,
    log=print,
) -> EvaluationResult:
    """Score a saved model on labelled rows it has not been trained on, and log the result as an
    MLflow run.

    ``source`` is either a table (CSV, TSV, JSONL, Parquet) with a text, a target and a gold
    label column, or an experiment file, whose data is loaded and split as ``stance train``
    does and whose ``split`` (default ``test``) is scored. Every row is validated as training rows
    are: a bad row
    stops the evaluation, or with ``on_bad_rows = "quarantine"`` goes to the run's rejects file.
    """
    _check_options(source, columns, split, data_dir)
    # a store that cannot be opened stops the command before the rows are scored
    store.configure()
    is_experiment = source.endswith(".toml")
    split = split or "test"
    loaded = open_model(model)
    for note in loaded.notes:
        log(f"note: {note}")
    stance_model = loaded.model
    labels = stance_model.labels
    trained = stance_model.config
    if is_experiment:
        experiment = Config.from_toml(source)
        if set(experiment.labels) != set(labels):
            raise ConfigError(
                f"{source} labels its rows {list(experiment.labels)}, but the model predicts "
                f"{list(labels)}; evaluate it on data with the same labels."
            )
        root = data_root(data_dir)
        fix = (
            f'Fix the rows, or set data.on_bad_rows = "quarantine" in {source} to score the rest '
            "and log these to the run's data/rejects.csv."
        )
        data = load_dataset(experiment.data, root, fix)
        splits = split_dataset(data.rows, experiment.split, experiment.seed)
        rows = (
            pd.concat(list(splits.values()), ignore_index=True) if split == "all" else splits[split]
        )
        resolved = experiment.to_dict()
        same_data = all(resolved[key] == trained.get(key) for key in ("data", "split", "seed"))
        seen = {"train", "all"} | (
            {"valid"} if trained.get("model", {}).get("refit_on_valid") else set()
        )
        if smalldata.applies(data.rows, experiment.split):  # fitted on every row
            seen |= set(EVALUATION_SPLITS)
        if same_data and split in seen:
            log(
                f"warning: the model was trained on these rows ({split} split of its own data); "
                "the metrics are not a held-out estimate."
            )
    else:
        root = Path(".")
        fix = (
            "Fix the rows, or pass --on-bad-rows quarantine to score the rest and log these to "
            "the run's data/rejects.csv."
        )
        data = load_dataset(
            _table_config(source, columns, labels, stance_model.needs_target), root, fix
        )
        rows = data.rows
    log(
        f"data: {data.rows_read} rows read, {len(data.rows)} kept, {len(data.rejects)} rejected; "
        f"evaluating {len(rows)}"
    )
    if note := stance_model.unseen_target_note(stance_model.unseen_targets(rows["target"]), "rows"):
        log(note)

    predictions = stance_model.predict(rows)
    predicted = predictions["label"].to_numpy()
    present = labels_present(labels, rows["label"], predicted)
    if absent := [label for label in labels if label not in present]:
        it = "them" if len(absent) > 1 else "it"
        log(
            f"note: {' and '.join(absent)}: no row carries {it} and the model never predicted "
            f"{it}, so macro-F1 averages {' and '.join(present)} only."
        )
    headline = trained.get("headline_metric", "macro_f1")
    if headline not in metric_names(labels):
        headline = "macro_f1"
    metrics = scoring.score(
        "eval",
        rows["label"],
        predicted,
        labels,
        rows["target"],
        headline=headline,
        seed=int(trained.get("seed", 0)),
    )
    text = report_text(rows["label"], predicted, labels)

    name = trained.get("name", "evaluation")
    model_params = trained.get("model", {})
    tags = {
        schema.EVALUATED_MODEL: model,
        schema.EVALUATED_MODEL_SHA256: loaded.file_sha256(),
        schema.EVALUATION_DATA: source,
    }
    scored = pd.concat(
        [
            rows[["id", "target", "label"]].reset_index(drop=True),
            predictions.rename(columns={"label": "predicted"}).reset_index(drop=True),
        ],
        axis=1,
    )
    results = {"metrics": metrics, "predictions": scored}  # what is kept on disk if the store fails
    with tracking.command_run(name, results, tags) as run_id:
        tracking.log_evaluation_params(
            {
                "headline_metric": headline,
                "labels": json.dumps(list(labels)),
                "model.strategy": model_params.get("strategy"),
                "model.classifier": model_params.get("classifier"),
                "evaluation.split": split if is_experiment else "all",
            }
        )
        tracking.log_data(data, {"eval": rows}, root)
        tracking.log_metrics(metrics)
        scoring.log_scores(
            "eval",
            f"{name}: {Path(source).name}",
            rows["label"],
            predicted,
            labels,
            rows["target"],
            scored,
        )
    return EvaluationResult(
        run_id, metrics, f"eval_{headline}", text, data.rows_read, len(data.rejects)
    )


def _table_config(source: str, columns: LabelledInput, labels: tuple[str, ...], needs_target: bool):
    """A data config for a labelled table, after checking its columns so that a missing one is named
    with its option.
    """
    if not Path(source).is_file():
        raise DataError(
            f"{source} is not a file; expected a labelled table (.csv, .tsv, .jsonl, .parquet) or "
            "an experiment file (.toml)."
        )
    fmt = format_of(source, columns.input_format)
    names = columns.columns
    text_column, target_column, label_column = (
        names.column(name) for name in ("text", "target", "label")
    )
    with Table(source, fmt) as table:
        # A JSON line names only its own keys: look past a first record that lacks one, as training
        # reads every line's.
        table.look_ahead_for(
            [text_column, target_column, label_column] + ([names.id] if names.id else [])
        )
        found = table.columns
    wanted = {
        "text": (text_column, COLUMN_OPTIONS["text"]),
        "label": (label_column, COLUMN_OPTIONS["label"]),
    }
    if names.id:
        wanted["id"] = (names.id, COLUMN_OPTIONS["id"])
    target = columns.target
    if not target:
        if target_column in found:
            wanted["target"] = (target_column, COLUMN_OPTIONS["target"])
        elif needs_target:
            raise DataError(
                f"{source}: no column {target_column!r} (the target); found columns "
                f"{found}.{separator_hint(found, fmt)} "
                "Name the target column with --target-column, or give every row one target with "
                "--target."
            )
        # the model reads text only, so rows need no target; this one names them in the metrics
        else:
            target = "(no target)"
    for field_name, (column, option) in wanted.items():
        if column not in found:
            raise DataError(
                f"{source}: no column {column!r} (the {field_name}); found columns "
                f"{found}.{separator_hint(found, fmt)} Name the {field_name} column with {option}."
            )
    return DataConfig.from_dict(
        {
            "format": fmt,
            "path": str(source),
            "columns": {name: column for name, (column, _) in wanted.items()},
            "labels": labels,
            "label_map": {},
            "target": target or "",
            "target_names": {},
            "on_bad_rows": columns.on_bad_rows or "error",
            "use_weights": False,
        },
        "evaluation input: ",
    )
