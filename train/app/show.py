"""``stance show RUN``: one run in words."""

from __future__ import annotations

from train.app.arguments import RUN_HELP


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "show",
        help="one run in words: what made it, from which code, its artifacts, and its model "
        "card or metrics",
    )
    parser.add_argument("run_id", metavar="RUN", help=RUN_HELP)


def run(args) -> int:
    from train.runs import describe_run

    print(describe_run(args.run_id))
    return 0
