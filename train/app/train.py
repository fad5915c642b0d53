"""``stance train EXPERIMENT``: fit one experiment and log it to MLflow."""

from __future__ import annotations

from train.app.arguments import DATA_DIR_HELP, add_overrides, progress_to_stderr


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train one experiment and log it to MLflow")
    parser.add_argument("experiment", help="experiment file, e.g. experiments/sample.toml")
    add_overrides(parser)
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)


def run(args) -> int:
    from train.config import Config
    from train.training import train

    config = Config.from_toml(args.experiment, args.overrides)
    result = train(config, args.data_dir, log=progress_to_stderr)
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
