"""``stance train EXPERIMENT``: fit one experiment and log it to MLflow."""

from __future__ import annotations

from train.app.arguments import (
    DATA_DIR_HELP,
    add_overrides,
    add_progress_options,
    progress_to_stderr,
)


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train one experiment and log it to MLflow")
    parser.add_argument("experiment", help="experiment file, e.g. experiments/sample.toml")
    add_overrides(parser)
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    add_progress_options(parser)


def run(args) -> int:
    from train import preflight
    from train.config import Config

    # The files first, then the config (whose step checks import scikit-learn), then the rest.
    preflight.training_data(args.experiment, args.overrides, args.data_dir)
    config = Config.from_toml(args.experiment, args.overrides)
    from train.training import train

    result = train(config, args.data_dir, log=progress_to_stderr, show_progress=args.progress)
    if result.rows_rejected:
        progress_to_stderr(
            f"rejected rows: {result.rows_rejected} (logged as data/rejects.csv in the run)"
        )
    print(f"run_id: {result.run_id}")
    print(f"{result.headline}: {result.metrics[result.headline]:.4f}")
    progress_to_stderr(
        f"next: stance predict runs:/{result.run_id}/model INPUT -o OUTPUT"
        f"  (or stance register {result.run_id} --name NAME)"
    )
    return 0
