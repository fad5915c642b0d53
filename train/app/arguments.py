"""Option types and help texts that several commands share."""

from __future__ import annotations

import argparse
import sys

RUN_HELP = "a run id, or its first characters (at least four) where no other run starts with them"
MODEL_HELP = (
    "a model folder, runs:/RUN/model (RUN: the id or its first four or more "
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


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """--progress / --no-progress (alias --quiet): a bar on stderr, by default when stderr is a
    terminal."""
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar with a total and an ETA (default: when stderr is a terminal)",
    )
    progress.add_argument(
        "--no-progress", "--quiet", dest="progress", action="store_false", help="no progress bar"
    )


def progress_to_stderr(message: str) -> None:
    """Progress and notes go to stderr, so that stdout holds only the command's result."""
    print(message, file=sys.stderr)


def add_reading_options(parser: argparse.ArgumentParser, source: str) -> None:
    """How a command that scores a corpus reads it: a table of sentences (its format and
    columns) or, with --documents, plain-text documents; the workers and the rejects file.
    `stance predict` and `stance select` read alike, through train.predict."""
    parser.add_argument(
        "--input-format",
        choices=FORMATS,
        help="input format (default: from the extension; csv for stdin)",
    )
    parser.add_argument("--text-column", help="default: text")
    parser.add_argument("--target-column", help="default: target")
    parser.add_argument(
        "--id-column",
        help="kept in the output (default: the column 'id' where there is one); "
        "rows without an id get their line number",
    )
    parser.add_argument("--target", help="one target for every row (and for --documents)")
    parser.add_argument(
        "--documents",
        action="store_true",
        help=f"{source} holds plain-text documents: split them into sentences",
    )
    parser.add_argument(
        "--jobs",
        type=at_least_one,
        default=None,
        help="cores: worker processes, or threads of one process for a model with the sentence "
        "encoder (default: all cores)",
    )
    parser.add_argument(
        "--rejects", help="rejects file (default: OUTPUT.rejects.csv beside the output)"
    )


def reading_options(args, **more):
    """The ``PredictOptions`` of :func:`add_reading_options`' arguments, and ``more``."""
    from train.predict import PredictOptions
    from train.tables import ColumnNames

    return PredictOptions(
        columns=ColumnNames(text=args.text_column, target=args.target_column, id=args.id_column),
        target=args.target,
        documents=args.documents,
        input_format=args.input_format,
        jobs=args.jobs,
        rejects=args.rejects,
        **more,
    )
