"""``stance predict MODEL INPUT -o OUTPUT``: label a file of sentences or a folder of documents."""

from __future__ import annotations

from train.app.arguments import (
    FORMATS,
    MODEL_HELP,
    add_progress_options,
    add_reading_options,
    at_least_one,
    reading_options,
)
from train.errors import StanceError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict",
        help="predict a file of sentences or a folder of documents",
        description="Predict every row of INPUT (CSV, TSV, JSONL, Parquet; - for stdin) or, with "
        "--documents, every sentence of plain-text documents plus one row per document.",
    )
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument(
        "input", help="input file, a folder of .txt files with --documents, or - for stdin"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (.csv .tsv .jsonl .parquet) or - for stdout",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=FORMATS,
        help="output format (default: from the extension; csv for stdout)",
    )
    parser.add_argument(
        "--explain",
        type=at_least_one,
        default=0,
        metavar="K",
        help="add an explanation column: the K features that added most to each row's label "
        "score, each with its contribution (value times weight; linear classifiers; sentence "
        "rows of documents)",
    )
    parser.add_argument(
        "--aggregate",
        choices=["mean", "majority", "stance", "framing"],
        default="mean",
        help="document label: highest mean probability (mean), most frequent sentence label "
        "(majority), the side its sentences take, each weighted by how much stance it "
        "carries, NONE when little does (stance), or the mean with quoted and reported "
        "sentences weighted down and the first and last weighted up (framing)",
    )
    parser.add_argument(
        "--keep-text", action="store_true", help="copy text and target into the output"
    )
    parser.add_argument(
        "--chunk-size", type=at_least_one, default=10_000, help="rows per chunk (default 10000)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run, skipping finished chunks",
    )
    add_reading_options(parser, "INPUT")
    parser.add_argument(
        "--engine",
        choices=["local", "spark"],
        default="local",
        help="local: this machine, in --jobs worker processes or threads (default); spark: a "
        "Spark cluster, which reads INPUT (a file or folder Spark can reach) and writes OUTPUT "
        "as a folder of Parquet files (needs the spark extra and Java)",
    )
    parser.add_argument(
        "--master",
        help="Spark master URL with --engine spark (default: local[*], every core here)",
    )
    add_progress_options(parser)


def run(args) -> int:
    from train import preflight
    from train.tables import ColumnNames

    # With --target the target column is not read (the two together are refused later, with
    # their own message).
    target_column = None if args.target else args.target_column
    columns = ColumnNames(text=args.text_column, target=target_column, id=args.id_column)
    preflight.prediction_input(args.model, args.input, columns, args.input_format, args.documents)
    from train.predict import predict_file

    options = reading_options(
        args,
        aggregate=args.aggregate,
        output_format=args.output_format,
        chunk_size=args.chunk_size,
        resume=args.resume,
        keep_text=args.keep_text,
        explain=args.explain,
        progress=args.progress,
    )
    if args.engine == "spark":
        from train.spark import DEFAULT_MASTER, predict_spark

        predict_spark(args.model, args.input, args.output, options, args.master or DEFAULT_MASTER)
        return 0
    if args.master:
        raise StanceError("--master names a Spark master; it goes with --engine spark.")
    predict_file(args.model, args.input, args.output, options)
    return 0
