"""The ``stance`` command. Each subcommand is a thin layer over one library function."""

from __future__ import annotations

import argparse
import shlex
import sys

from train.config import GROUPINGS
from train.errors import StanceError

EXIT_USAGE = 2
RUN_HELP = "a run id, or its first characters (at least four) where no other run starts with them"


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stance")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stance", description="Train and use small, fast stance classifiers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one experiment and log it to MLflow")
    train.add_argument("experiment", help="experiment file, e.g. experiments/sample.toml")
    train.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value: clf__C=0.5, word__ngram_range=[1,3], data.on_bad_rows=quarantine (repeatable)",
    )
    train.add_argument("--data-dir", help="root that data paths are relative to (default: $STANCE_DATA_DIR, else ./data)")

    predict = commands.add_parser(
        "predict",
        help="predict a file of sentences or a folder of documents",
        description="Predict every row of INPUT (CSV, TSV, JSONL, Parquet; - for stdin) or, with --documents, "
        "every sentence of plain-text documents plus one row per document.",
    )
    predict.add_argument("model", help="model.pkl or model folder, runs:/RUN/model (RUN: the id or its first four or more characters), models:/NAME@ALIAS or models:/NAME/VERSION")
    predict.add_argument("input", help="input file, a folder of .txt files with --documents, or - for stdin")
    predict.add_argument("-o", "--output", required=True, help="output file (.csv .tsv .jsonl .parquet) or - for stdout")
    predict.add_argument("--format", dest="output_format", choices=["csv", "tsv", "jsonl", "parquet"], help="output format (default: from the extension; csv for stdout)")
    predict.add_argument("--input-format", choices=["csv", "tsv", "jsonl", "parquet"], help="input format (default: from the extension; csv for stdin)")
    predict.add_argument("--text-column", help="default: text")
    predict.add_argument("--target-column", help="default: target")
    predict.add_argument("--id-column", help="kept in the output (default: the column 'id' where there is one); rows without an id get their line number")
    predict.add_argument("--target", help="one target for every row (and for --documents)")
    predict.add_argument("--documents", action="store_true", help="INPUT holds plain-text documents: split them into sentences")
    predict.add_argument("--explain", type=_at_least_one, default=0, metavar="K", help="add an explanation column: the K features that added most to each row's label (linear classifiers; sentence rows of documents)")
    predict.add_argument("--aggregate", choices=["mean", "majority"], default="mean", help="document label: highest mean probability (mean) or most frequent sentence label (majority)")
    predict.add_argument("--keep-text", action="store_true", help="copy text and target into the output")
    predict.add_argument("--jobs", type=_at_least_one, default=None, help="worker processes (default: all cores)")
    predict.add_argument("--chunk-size", type=_at_least_one, default=10_000, help="rows per chunk (default 10000)")
    predict.add_argument("--rejects", help="rejects file (default: OUTPUT.rejects.csv beside the output)")
    predict.add_argument("--resume", action="store_true", help="continue an interrupted run, skipping finished chunks")
    progress = predict.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None, help="show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")

    evaluate = commands.add_parser(
        "evaluate",
        help="score a saved model on labelled rows (a table, or an experiment's split) and log the result to MLflow",
        description="Score a saved model on labelled rows it was not trained on: a CSV, TSV, JSONL or Parquet file with "
        "text, target and gold label columns, or an experiment file whose --split is scored. Every row is validated as "
        "training rows are. The metrics (eval_*), the classification report, the confusion matrix and each row's "
        "prediction are logged as an MLflow run in the model's experiment.",
    )
    evaluate.add_argument("model", help="model.pkl or model folder, runs:/RUN/model, models:/NAME@ALIAS or models:/NAME/VERSION")
    evaluate.add_argument("data", help="labelled table (.csv .tsv .jsonl .parquet), or an experiment file (.toml)")
    evaluate.add_argument("--text-column", help="default: text")
    evaluate.add_argument("--target-column", help="default: target")
    evaluate.add_argument("--label-column", help="the gold label (default: label)")
    evaluate.add_argument("--id-column", help="kept with each row's prediction (default: the column 'id' where there is one, else FILE:LINE)")
    evaluate.add_argument("--target", help="one target for every row")
    evaluate.add_argument("--input-format", choices=["csv", "tsv", "jsonl", "parquet"], help="default: from the extension")
    evaluate.add_argument(
        "--on-bad-rows", choices=["error", "quarantine"],
        help="error (default): stop, naming the bad rows' lines and problems; quarantine: score the rest and log the bad ones as data/rejects.csv",
    )
    evaluate.add_argument("--split", choices=["train", "valid", "test", "all"], help="with an experiment file: the split to score (default: test)")
    evaluate.add_argument("--data-dir", help="with an experiment file: the data root (default: $STANCE_DATA_DIR, else ./data)")

    cv = commands.add_parser(
        "cv",
        help="cross-validate the experiment on its training split (validation and test unread)",
        description="K-fold cross-validation of one configuration on the training split, logged as an MLflow run: "
        "cv_* metrics are the mean (and _std) over folds, oof_* those of all out-of-fold predictions pooled.",
    )
    cv.add_argument("experiment")
    cv.add_argument("--folds", type=_at_least_two, default=5)
    cv.add_argument(
        "--group-by", choices=GROUPINGS,
        help="keep related rows in one fold: whole targets, the data's group column (FNC-1 bodies), or each text's "
        "most widespread hashtag (default: target when the experiment splits by target, else none: stratified by label)",
    )
    cv.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    cv.add_argument("--data-dir")
    cv.add_argument("--jobs", type=_at_least_one, default=1, help="folds fitted at once, in processes that share the first fold's sentence embeddings (default 1)")

    search = commands.add_parser("search", help="search the experiment's [search.space] with Optuna; one child run per trial")
    search.add_argument("experiment")
    search.add_argument("--trials", type=_at_least_one, required=True)
    search.add_argument("--jobs", type=_at_least_one, default=1, help="with --cv, folds fitted at once (as in stance cv); otherwise trials run at once in threads (default 1)")
    search.add_argument("--storage", help="Optuna storage URL shared by processes or machines, e.g. sqlite:///study.db (default: in memory)")
    search.add_argument("--study-name", help="default: EXPERIMENT-search; an existing study in --storage is resumed")
    search.add_argument("--cv", type=_at_least_two, help="score trials by K-fold cross-validation on train (grouped by target with split.method = by_target)")
    search.add_argument("--group-by", choices=GROUPINGS, help="with --cv: keep related rows in one fold, as in `stance cv`")
    search.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    search.add_argument("--data-dir")

    runs = commands.add_parser("runs", help="list logged runs, optionally sorted by a metric")
    runs.add_argument("experiment", nargs="?", help="experiment name (default: all)")
    runs.add_argument("--sort", metavar="METRIC", help="e.g. test_f_avg or valid_macro_f1 (highest first)")
    runs.add_argument("--limit", type=_at_least_one, default=20)
    runs.add_argument("--trials", action="store_true", help="include search trials (child runs), scored on validation or CV")

    compare = commands.add_parser("compare", help="params and metrics that differ; for two runs, a paired bootstrap test")
    compare.add_argument("run_ids", nargs="+", metavar="RUN", help=RUN_HELP)

    show = commands.add_parser("show", help="one run in words: what made it, from which code, its artifacts, and its model card or metrics")
    show.add_argument("run_id", metavar="RUN", help=RUN_HELP)

    register = commands.add_parser("register", help="register a run's model and move an alias to it")
    register.add_argument("run_id", metavar="RUN", help=RUN_HELP)
    register.add_argument("--name", required=True)
    register.add_argument("--alias", help="e.g. champion")

    reproduce = commands.add_parser("reproduce", help="retrain a run from its logged config and data hashes")
    reproduce.add_argument("run_id", metavar="RUN", help=RUN_HELP)
    reproduce.add_argument("--data-dir", help="data root (default: $STANCE_DATA_DIR, else ./data)")
    return parser


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected a whole number, {least} or more; found {text!r}")
    return value


def _at_least_one(text: str) -> int:
    return _whole_number(text, 1)


def _at_least_two(text: str) -> int:
    """Folds: with one, no rows would be left to train on."""
    return _whole_number(text, 2)


def _search(args) -> int:
    from train.search import run_search

    if args.group_by and not args.cv:
        raise StanceError("--group-by groups cross-validation folds; give --cv K with it.")
    result = run_search(args.experiment, args.trials, args.overrides, args.jobs, args.storage, args.study_name, args.cv, args.data_dir,
                        log=lambda message: print(message, file=sys.stderr), group_by=args.group_by)
    print(f"parent_run_id: {result.parent_run_id}")
    print(f"study: {result.study_name}")
    print(f"best: {result.best_value:.4f} (untuned default {result.default_value:.4f}) with {result.best_params}")
    command = " ".join(["stance train", shlex.quote(str(args.experiment))] + [f"--set {shlex.quote(o)}" for o in result.best_overrides])
    print(f"train the best configuration: {command}  (or `stance train best_config.toml`, logged with the parent run)")
    headline = {k: v for k, v in result.test_metrics.items() if k in ("accuracy", "macro_f1", "f_avg", "fnc_score")}
    print("test (best configuration refitted on train + valid): " + ", ".join(f"{k} {v:.4f}" for k, v in headline.items()))
    return 0


def _cv(args) -> int:
    from train.crossval import run_cv

    result = run_cv(args.experiment, args.folds, args.group_by, args.overrides, args.data_dir, log=lambda message: print(message, file=sys.stderr), jobs=args.jobs)
    name = result.headline
    for number, fold in enumerate(result.per_fold, start=1):
        print(f"fold {number}: {name} {fold[name]:.4f}")
    metrics = result.metrics
    print(f"run_id: {result.run_id}")
    print(f"cv_{name}: {metrics[f'cv_{name}']:.4f} +- {metrics[f'cv_{name}_std']:.4f} (mean and sd over folds)")
    print(f"oof_{name}: {metrics[f'oof_{name}']:.4f} (all out-of-fold predictions pooled)")
    return 0


def _runs(args) -> int:
    from train.runs import list_runs

    table = list_runs(args.experiment, args.sort, args.limit, trials=args.trials)
    print(table.to_string(index=False, na_rep="-") if len(table) else "no runs")
    return 0


def _compare(args) -> int:
    from train.runs import compare_runs

    comparison = compare_runs(args.run_ids)
    print("params that differ:")
    print(comparison.params.to_string() if len(comparison.params) else "  none")
    print("\nmetrics that differ:")
    print(comparison.metrics.to_string() if len(comparison.metrics) else "  none")
    test = comparison.test
    if test and "skipped" in test:
        print(f"\npaired test skipped: {test['skipped']}")
    elif test:
        first, second = (r[:8] for r in test["runs"])
        print(
            f"\npaired bootstrap on the {test['rows']} ({test['samples']} resamples), {test['metric']} {second} - {first}: "
            f"{test['difference']:+.4f}, 95 % interval [{test['low']:+.4f}, {test['high']:+.4f}], p = {test['p_value']:.3f}"
            + (" (the difference is unlikely to be chance)" if test["p_value"] < 0.05 else " (not distinguishable from chance)")
        )
    return 0


def _show(args) -> int:
    from train.runs import describe_run

    print(describe_run(args.run_id))
    return 0


def _register(args) -> int:
    from train import tracking

    run_id = tracking.run_info(args.run_id)["run_id"]  # the full id, or a clear error for an unknown run
    version = tracking.register_model(run_id, args.name, args.alias)
    print(f"registered models:/{args.name}/{version}" + (f", alias models:/{args.name}@{args.alias}" if args.alias else ""))
    return 0


def _reproduce(args) -> int:
    from train.runs import reproduce_run, side_by_side

    old, new, facts = reproduce_run(args.run_id, args.data_dir, log=lambda message: print(message, file=sys.stderr))
    table = side_by_side(old, new)
    print(table.to_string(index=False))
    identical = bool(table["same"].all())
    print(f"run_id: {facts['new_run_id']}")
    print("identical metrics" if identical else f"{int((~table['same']).sum())} metrics differ")
    if facts["dirty"]:
        print("note: the original run came from a work tree with uncommitted changes")
    return 0


def _evaluate(args) -> int:
    from train.evaluate import LabelledInput, evaluate_model

    columns = LabelledInput(args.text_column, args.target_column, args.label_column, args.id_column, args.target, args.input_format, args.on_bad_rows)
    result = evaluate_model(args.model, args.data, columns, args.split, args.data_dir, log=lambda message: print(message, file=sys.stderr))
    if result.rows_rejected:
        print(f"rejected rows: {result.rows_rejected} (logged as data/rejects.csv in the run)", file=sys.stderr)
    print(f"run_id: {result.run_id}")
    low, high = (result.metrics[f"{result.headline}_ci_{end}"] for end in ("low", "high"))
    print(f"{result.headline}: {result.metrics[result.headline]:.4f} (95 % bootstrap interval {low:.4f}-{high:.4f})")
    print(result.report.rstrip())
    return 0


def _predict(args) -> int:
    from train.predict import PredictOptions, predict_file

    options = PredictOptions(
        text_column=args.text_column, target_column=args.target_column, id_column=args.id_column, target=args.target,
        documents=args.documents, aggregate=args.aggregate, input_format=args.input_format, output_format=args.output_format,
        chunk_size=args.chunk_size, jobs=args.jobs, resume=args.resume, rejects=args.rejects, keep_text=args.keep_text, explain=args.explain,
        progress=args.progress,
    )
    predict_file(args.model, args.input, args.output, options)
    return 0


def _train(args) -> int:
    from train.config import Config
    from train.training import train

    config = Config.from_toml(args.experiment, args.overrides)
    result = train(config, args.data_dir, log=lambda message: print(message, file=sys.stderr))
    if result.rows_rejected:
        print(f"rejected rows: {result.rows_rejected} (logged as data/rejects.csv in the run)", file=sys.stderr)
    print(f"run_id: {result.run_id}")
    print(f"{result.headline}: {result.metrics[result.headline]:.4f}")
    print(f"next: stance predict runs:/{result.run_id}/model INPUT -o OUTPUT  (or stance register {result.run_id} --name NAME)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"train": _train, "predict": _predict, "runs": _runs, "compare": _compare, "show": _show, "register": _register, "reproduce": _reproduce, "search": _search, "cv": _cv, "evaluate": _evaluate}
        return commands[args.command](args)
    except StanceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not isinstance(error, _mlflow_errors()):
            raise
        # A server that cannot be reached, or a store that refuses a write: the
        # user's setup, not a bug here, so it is reported like any other StanceError.
        from train.tracking import store_uri  # MLflow is imported already, or there would be no MLflow error

        print(f"error: the MLflow store at {store_uri()} failed: {error.message} Check that it is reachable and writable, or set MLFLOW_TRACKING_URI to another.", file=sys.stderr)
        return EXIT_USAGE


def _mlflow_errors() -> tuple[type[Exception], ...]:
    """MLflow's exception class, if MLflow was imported at all (``stance --help`` never imports it)."""
    module = sys.modules.get("mlflow.exceptions")
    return (module.MlflowException,) if module else ()


if __name__ == "__main__":
    sys.exit(main())
