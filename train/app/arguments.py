"""Option types and help texts that several commands share."""

from __future__ import annotations

import argparse
import sys

RUN_HELP = "a run id, or its first characters (at least four) where no other run starts with them"
MODEL_HELP = (
    "model.pkl or model folder, runs:/RUN/model (RUN: the id or its first four or more "
    "characters), "
    "models:/NAME@ALIAS or models:/NAME/VERSION"
)
DATA_DIR_HELP = "root that data paths are relative to (default: $STANCE_DATA_DIR, else ./data)"
SET_HELP = (
    "override a config value: clf__C=0.5, word__ngram_range=[1,3], "
    "data.on_bad_rows=quarantine (repeatable)"
)
FORMATS = ["csv", "tsv", "jsonl", "parquet"]


def whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, {least} or more; found {text!r}"
        )
    return value


def at_least_one(text: str) -> int:
    return whole_number(text, 1)


def at_least_two(text: str) -> int:
    """Folds: with one, no rows would be left to train on."""
    return whole_number(text, 2)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP
    )


def progress_to_stderr(message: str) -> None:
    """Progress and notes go to stderr, so that stdout holds only the command's result."""
    print(message, file=sys.stderr)
