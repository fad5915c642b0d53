"""``stance new EXPERIMENT --data FILE``: a first experiment file for an annotated table."""

from __future__ import annotations

from train.app.arguments import DATA_DIR_HELP


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "new",
        help="write a first experiment file for an annotated table",
        description="Read FILE's header and first rows, propose its text, target and label "
        "columns and its label set, and write EXPERIMENT listing only what differs from the "
        "defaults. Say what was guessed; name any column outright to override a guess.",
    )
    parser.add_argument(
        "experiment", help="the experiment file to write, e.g. experiments/mine.toml"
    )
    parser.add_argument(
        "--data", required=True, help="the annotated table (CSV, TSV, JSONL, Parquet)"
    )
    for name in ("text", "target", "label", "id"):
        parser.add_argument(f"--{name}-column", help=f"the {name} column (default: guessed)")
    parser.add_argument("--target", help="one target for every row, where the file has none")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--overwrite", action="store_true", help="replace EXPERIMENT if it exists")


def run(args) -> int:
    from train.scaffold import draft

    given = {name: getattr(args, f"{name}_column") for name in ("text", "target", "label", "id")}
    made = draft(args.experiment, args.data, given, args.target, args.data_dir, args.overwrite)
    print(f"wrote {made.path}")
    for name, column in made.columns.items():
        print(f"  {name}: column {column!r} ({made.reasons[name]})")
    print(
        "  labels: "
        + ", ".join(
            f"{label} ({rows} row{'s' if rows != 1 else ''})" for label, rows in made.labels
        )
    )
    print(
        "  model: logistic regression for a few hundred rows on the default features"
        + (" and MiniLM's sentence vectors (weight 4, int8)" if made.encoder else "")
    )
    for note in made.notes:
        print(f"  note: {note}")
    print(
        f"next: stance train {made.path}"
        + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    )
    return 0
