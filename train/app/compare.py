"""``stance compare RUN RUN...``: what differs between runs; for two, a paired bootstrap test."""

from __future__ import annotations

from train.app.arguments import RUN_HELP


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "compare", help="params and metrics that differ; for two runs, a paired bootstrap test"
    )
    parser.add_argument("run_ids", nargs="+", metavar="RUN", help=RUN_HELP)


def run(args) -> int:
    from train.runs import compare_runs

    comparison = compare_runs(args.run_ids)
    print("params that differ:")
    print(comparison.params.to_string() if len(comparison.params) else "  none")
    print("\nmetrics that differ:")
    print(comparison.metrics.to_string() if len(comparison.metrics) else "  none")
    test = comparison.test
    if test and "skipped" in test:
        print(f"\npaired test skipped: {test['skipped']}")
    elif test:
        first, second = (run_id[:8] for run_id in test["runs"])
        verdict = (
            "the difference is unlikely to be chance"
            if test["p_value"] < 0.05
            else "not distinguishable from chance"
        )
        print(
            f"\npaired bootstrap on the {test['rows']} ({test['samples']} resamples), "
            f"{test['metric']} {second} - {first}: {test['difference']:+.4f}, "
            f"95 % interval [{test['low']:+.4f}, {test['high']:+.4f}], "
            f"p = {test['p_value']:.3f} ({verdict})"
        )
    return 0
