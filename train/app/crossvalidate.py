"""``stance cv EXPERIMENT``: K-fold cross-validation on the training split, logged as one run."""

from __future__ import annotations

from train.app.arguments import (
    DATA_DIR_HELP,
    add_overrides,
    add_progress_options,
    at_least_one,
    at_least_two,
    progress_to_stderr,
)
from train.config import GROUPINGS


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "cv",
        help="cross-validate the experiment on its training split (validation and test unread)",
        description="K-fold cross-validation of one configuration on the training split, logged "
        "as an MLflow run: cv_* metrics are the mean (and _std) over folds, oof_* those of all "
        "out-of-fold predictions pooled.",
    )
    parser.add_argument("experiment")
    parser.add_argument("--folds", type=at_least_two, default=5)
    parser.add_argument(
        "--group-by",
        choices=GROUPINGS,
        help="keep related rows in one fold: whole targets, the data's group column (FNC-1 "
        "bodies), or each text's most widespread hashtag (default: target when the experiment "
        "splits by target, else none: stratified by label)",
    )
    add_overrides(parser)
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    add_progress_options(parser)
    parser.add_argument(
        "--jobs",
        type=at_least_one,
        default=1,
        help="folds fitted at once, in processes that share the first fold's sentence "
        "embeddings (default 1)",
    )


def run(args) -> int:
    from train import preflight

    preflight.training_data(args.experiment, args.overrides, args.data_dir)
    from train.crossval import run_cv

    result = run_cv(
        args.experiment,
        args.folds,
        args.group_by,
        args.overrides,
        args.data_dir,
        log=progress_to_stderr,
        jobs=args.jobs,
        show_progress=args.progress,
    )
    name = result.headline
    for number, fold in enumerate(result.per_fold, start=1):
        print(f"fold {number}: {name} {fold[name]:.4f}")
    metrics = result.metrics
    print(f"run_id: {result.run_id}")
    print(
        f"cv_{name}: {metrics[f'cv_{name}']:.4f} +- {metrics[f'cv_{name}_std']:.4f} "
        "(mean and sd over folds)"
    )
    print(f"oof_{name}: {metrics[f'oof_{name}']:.4f} (all out-of-fold predictions pooled)")
    return 0
