"""``stance search EXPERIMENT --trials N``: Optuna over ``[search.space]``, a child run per
trial.
"""

from __future__ import annotations

import shlex

from train.app.arguments import (
    DATA_DIR_HELP,
    add_overrides,
    add_progress_options,
    at_least_one,
    at_least_two,
    progress_to_stderr,
)
from train.config import GROUPINGS
from train.errors import StanceError

HEADLINE_METRICS = ("accuracy", "macro_f1", "f_avg", "fnc_score")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "search",
        help="search the experiment's [search.space] with Optuna; one child run per trial",
    )
    parser.add_argument("experiment")
    parser.add_argument("--trials", type=at_least_one, required=True)
    parser.add_argument(
        "--jobs",
        type=at_least_one,
        default=1,
        help="with --cv, folds fitted at once (as in stance cv); otherwise trials run at once "
        "in threads (default 1)",
    )
    parser.add_argument(
        "--storage",
        help="Optuna storage URL shared by processes or machines, e.g. sqlite:///study.db "
        "(default: in memory)",
    )
    parser.add_argument(
        "--study-name", help="default: EXPERIMENT-search; an existing study in --storage is resumed"
    )
    parser.add_argument(
        "--cv",
        type=at_least_two,
        help="score trials by K-fold cross-validation on train (grouped by target with "
        "split.method = by_target)",
    )
    parser.add_argument(
        "--group-by",
        choices=GROUPINGS,
        help="with --cv: keep related rows in one fold, as in `stance cv`",
    )
    add_overrides(parser)
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    add_progress_options(parser)


def run(args) -> int:
    from train import preflight

    if args.group_by and not args.cv:
        raise StanceError("--group-by groups cross-validation folds; give --cv K with it.")
    preflight.training_data(args.experiment, args.overrides, args.data_dir)
    from train.search import run_search

    result = run_search(
        args.experiment,
        args.trials,
        args.overrides,
        args.jobs,
        args.storage,
        args.study_name,
        args.cv,
        args.data_dir,
        log=progress_to_stderr,
        group_by=args.group_by,
        show_progress=args.progress,
    )
    print(f"parent_run_id: {result.parent_run_id}")
    print(f"study: {result.study_name}")
    print(
        f"best: {result.best_value:.4f} (untuned default {result.default_value:.4f}) "
        f"with {result.best_params}"
    )
    overrides = [f"--set {shlex.quote(override)}" for override in result.best_overrides]
    command = " ".join(["stance train", shlex.quote(str(args.experiment)), *overrides])
    print(
        f"train the best configuration: {command}  (or the parent run's best_config.toml: "
        f"mlflow artifacts download -r {result.parent_run_id} -a best_config.toml -d out/, then "
        "stance train out/best_config.toml)"
    )
    headline = {k: v for k, v in result.test_metrics.items() if k in HEADLINE_METRICS}
    print(
        "test (best configuration refitted on train + valid): "
        + ", ".join(f"{k} {v:.4f}" for k, v in headline.items())
    )
    return 0
