"""``stance register RUN --name NAME [--alias ALIAS]``: put a run's model in the registry."""

from __future__ import annotations

from train.app.arguments import RUN_HELP


def add_parser(commands) -> None:
    parser = commands.add_parser("register", help="register a run's model and move an alias to it")
    parser.add_argument("run_id", metavar="RUN", help=RUN_HELP)
    parser.add_argument("--name", required=True)
    parser.add_argument("--alias", help="e.g. champion")


def run(args) -> int:
    from train import store, tracking

    # The full id, or a clear error for an unknown or ambiguous prefix.
    run_id = store.run_info(args.run_id)["run_id"]
    version = tracking.register_model(run_id, args.name, args.alias)
    alias = f", alias models:/{args.name}@{args.alias}" if args.alias else ""
    print(f"registered models:/{args.name}/{version}{alias}")
    return 0
