"""The ``stance`` command. Each subcommand is a thin layer over one library function."""

from __future__ import annotations

import argparse
import sys

from train.errors import StanceError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stance", description="Train and use small, fast stance classifiers.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train one experiment and log it to MLflow")
    train.add_argument("experiment", help="experiment file, e.g. experiments/sample.toml")
    train.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value: clf__C=0.5, word__ngram_range=[1,3], data.on_bad_rows=quarantine (repeatable)",
    )
    train.add_argument("--data-dir", help="root that data paths are relative to (default: $STANCE_DATA_DIR, else ./data)")
    return parser


def _train(args) -> int:
    from train.config import Config
    from train.training import train

    config = Config.from_toml(args.experiment, args.overrides)
    result = train(config, args.data_dir, log=lambda message: print(message, file=sys.stderr))
    if result.rows_rejected:
        print(f"rejected rows: {result.rows_rejected} (logged as data/rejects.csv in the run)", file=sys.stderr)
    print(f"run_id: {result.run_id}")
    print(f"{result.headline}: {result.metrics[result.headline]:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"train": _train}[args.command](args)
    except StanceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
