"""``stance select MODEL CORPUS -n N -o FILE``: pick the corpus rows most worth annotating."""

from __future__ import annotations

from train.app.arguments import (
    MODEL_HELP,
    add_progress_options,
    add_reading_options,
    at_least_one,
    progress_to_stderr,
    reading_options,
)

# train.selection.STRATEGIES, spelt out: importing it would import scikit-learn into `--help`.
STRATEGIES = ("diverse", "typical", "margin", "entropy", "random")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "select",
        help="pick the rows of an unlabeled corpus most worth annotating",
        description="Score CORPUS (a file of sentences, or with --documents plain-text documents "
        "split into sentences) with MODEL and write the N rows most worth a person's time, in a "
        "file `stance train` reads back once its label column is filled in. Each selection is "
        "logged as a run.",
    )
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument(
        "corpus", help="file of sentences, or a folder of .txt files with --documents"
    )
    parser.add_argument("-n", type=at_least_one, default=50, help="rows to select (default 50)")
    parser.add_argument(
        "-o", "--output", required=True, help="the file to annotate (.csv .tsv .jsonl .parquet)"
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="diverse",
        help="diverse (default): the least certain typical row of each of N clusters of "
        "similar wording; typical: the most typical row of each, the model's doubt left out "
        "(a first round on a target the model has not seen); margin, entropy: the least "
        "certain rows; random: a seeded draw",
    )
    parser.add_argument(
        "--seed", type=int, default=13, help="for diverse, typical and random (default 13)"
    )
    parser.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="FILE",
        help="files already annotated (earlier selections, training data): their ids and texts "
        "are not selected again",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT if it exists (default: refuse)"
    )
    add_reading_options(parser, "CORPUS")
    add_progress_options(parser)


def run(args) -> int:
    from train.selection import SelectOptions, select

    read = reading_options(args, progress=args.progress)
    options = SelectOptions(
        n=args.n,
        strategy=args.strategy,
        seed=args.seed,
        exclude=tuple(args.exclude),
        overwrite=args.overwrite,
        read=read,
    )
    result = select(args.model, args.corpus, args.output, options, log=progress_to_stderr)
    print(f"run_id: {result.run_id}")
    print(
        f"selected {len(result.selected):,} of {result.scored:,} rows scored "
        f"({result.excluded:,} already annotated, {result.repeated:,} repeated texts left out) "
        f"into {result.output}"
    )
    progress_to_stderr(
        f"next: fill in the {result.selected.columns[3]!r} column of {result.output}, then train "
        "with it added to data.path (docs/commands.md: Annotate what matters)"
    )
    return 0
