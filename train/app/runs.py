"""``stance runs [EXPERIMENT]``: list logged runs, optionally sorted by a metric."""

from __future__ import annotations

from train.app.arguments import at_least_one


def add_parser(commands) -> None:
    parser = commands.add_parser("runs", help="list logged runs, optionally sorted by a metric")
    parser.add_argument("experiment", nargs="?", help="experiment name (default: all)")
    parser.add_argument(
        "--sort", metavar="METRIC", help="e.g. test_f_avg or valid_macro_f1 (highest first)"
    )
    parser.add_argument("--limit", type=at_least_one, default=20)
    parser.add_argument(
        "--trials",
        action="store_true",
        help="include search trials (child runs), scored on validation or CV",
    )


def run(args) -> int:
    from train.runs import list_runs

    table = list_runs(args.experiment, args.sort, args.limit, trials=args.trials)
    print(table.to_string(index=False, na_rep="-") if len(table) else "no runs")
    return 0
