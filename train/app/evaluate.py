"""``stance evaluate MODEL DATA``: score a saved model on labelled rows and log the result."""

from __future__ import annotations

from train.app.arguments import DATA_DIR_HELP, FORMATS, MODEL_HELP, progress_to_stderr


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="score a saved model on labelled rows (a table, or an experiment's split) and log "
        "the result to MLflow",
        description="Score a saved model on labelled rows it was not trained on: a CSV, TSV, "
        "JSONL or Parquet file with text, target and gold label columns, or an experiment file "
        "whose --split is scored. Every row is validated as training rows are. The metrics "
        "(eval_*), the classification report, the confusion matrix and each row's prediction "
        "are logged as an MLflow run in the model's experiment.",
    )
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument(
        "data", help="labelled table (.csv .tsv .jsonl .parquet), or an experiment file (.toml)"
    )
    parser.add_argument("--text-column", help="default: text")
    parser.add_argument("--target-column", help="default: target")
    parser.add_argument("--label-column", help="the gold label (default: label)")
    parser.add_argument(
        "--id-column",
        help="kept with each row's prediction (default: the column 'id' where there is one, "
        "else FILE:LINE)",
    )
    parser.add_argument("--target", help="one target for every row")
    parser.add_argument("--input-format", choices=FORMATS, help="default: from the extension")
    parser.add_argument(
        "--on-bad-rows",
        choices=["error", "quarantine"],
        help="error (default): stop, naming the bad rows' lines and problems; quarantine: score "
        "the rest and log the bad ones as data/rejects.csv",
    )
    parser.add_argument(
        "--split",
        choices=["train", "valid", "test", "all"],
        help="with an experiment file: the split to score (default: test)",
    )
    parser.add_argument("--data-dir", help="with an experiment file: " + DATA_DIR_HELP)


def run(args) -> int:
    from train.evaluate import LabelledInput, evaluate_model
    from train.tables import ColumnNames

    columns = ColumnNames(
        text=args.text_column,
        target=args.target_column,
        label=args.label_column,
        id=args.id_column,
    )
    labelled = LabelledInput(columns, args.target, args.input_format, args.on_bad_rows)
    result = evaluate_model(
        args.model, args.data, labelled, args.split, args.data_dir, log=progress_to_stderr
    )
    if result.rows_rejected:
        progress_to_stderr(
            f"rejected rows: {result.rows_rejected} (logged as data/rejects.csv in the run)"
        )
    print(f"run_id: {result.run_id}")
    low, high = (result.metrics[f"{result.headline}_ci_{end}"] for end in ("low", "high"))
    print(
        f"{result.headline}: {result.metrics[result.headline]:.4f} "
        f"(95 % bootstrap interval {low:.4f}-{high:.4f})"
    )
    print(result.report.rstrip())
    return 0
