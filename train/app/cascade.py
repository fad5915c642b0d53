"""``stance cascade FAST ACCURATE``: join two runs' models, the fast one answering what it is sure
of."""

from __future__ import annotations

from train.app.arguments import progress_to_stderr


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "cascade",
        help="join a fast and an accurate run into one model that forwards only unsure rows",
        description=(
            "Join the models of two `stance train` runs on the same data: the fast model answers "
            "the rows it is sure of, the accurate model the rest. The threshold is the smallest "
            "share of validation rows forwarded from which on the validation metric stays within "
            "--max-loss points of the accurate model's."
        ),
    )
    parser.add_argument("fast_run", metavar="FAST", help="run id (or prefix) of the fast model")
    parser.add_argument(
        "accurate_run", metavar="ACCURATE", help="run id (or prefix) of the accurate model"
    )
    parser.add_argument(
        "--max-loss",
        type=float,
        default=0.5,
        help="points of the validation headline metric to give up for speed (default 0.5)",
    )


def run(args) -> int:
    from train.cascade import build

    result = build(args.fast_run, args.accurate_run, args.max_loss, log=progress_to_stderr)
    print(f"run_id: {result.run_id}")
    print(f"{result.headline}: {result.metrics[result.headline]:.4f}")
    print(f"test rows forwarded: {result.metrics['test_forwarded']:.1%}")
    progress_to_stderr(f"next: stance predict runs:/{result.run_id}/model INPUT -o OUTPUT")
    return 0
