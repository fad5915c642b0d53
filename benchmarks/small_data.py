"""How far is `stance train`'s small-data estimate from the truth? Below
``split.small_data_below`` rows a training holds nothing out and reports repeated
cross-validation over every row (train/smalldata.py). Here that estimate is set against the
score of the same model, fitted on the same rows, on held-out rows of the same target.

Targets and rows as in benchmarks/learning_curve.py: SemEval-2016's five targets (rows drawn
from a target's training tweets, scored on its test tweets, F_avg) and five ArgQ test topics
(a topic halved: rows drawn from one half, the other scored, macro-F1). For each target, each
size (``--sizes``, default 20 50 100) and each seed, ``size`` rows are drawn at random and the
sample experiment's model (the new-target model of the learning curves) is cross-validated on
them and then fitted on all of them.

    STANCE_DATA_DIR=../shared/data python3 -m uv run --frozen python benchmarks/small_data.py

Prints one markdown table: per dataset and size, the mean estimate and the mean held-out score
(over targets and seeds), the mean and mean absolute difference, and how often the held-out
score lies inside the estimate's 95 % interval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning_curve import DATASETS, base_config, tasks_of  # noqa: E402

from train import smalldata  # noqa: E402
from train.errors import DataError  # noqa: E402
from train.fitting import fit_stance_model  # noqa: E402
from train.metrics import compute_metrics  # noqa: E402
from train.sources import data_root  # noqa: E402


def one(dataset: str, task: dict, size: int, seed: int, settings=()) -> dict | None:
    """The estimate and the held-out score of ``size`` rows of one target; None where the draw
    lacks one of the target's labels or cannot be cross-validated (a label with one row)."""
    metric = DATASETS[dataset]["metric"]
    drawn = task["pool"].sample(n=min(size, len(task["pool"])), random_state=seed)
    drawn = drawn.reset_index(drop=True).assign(weight=1.0)
    labels = tuple(sorted(set(drawn["label"])))
    if set(labels) != set(task["pool"]["label"]):
        return None  # a label the draw lacks: the dataset's metric may not apply; said in `runs`
    config = base_config(
        dataset, labels, settings=(f'headline_metric="{metric}"', f"seed={seed}", *settings)
    )
    try:
        estimate = smalldata.estimate(config, drawn)
    except DataError:
        return None
    model = fit_stance_model(config, drawn)
    scored = task["score"]
    truth = compute_metrics(
        scored["label"], model.predict(scored)["label"], labels, scored["target"]
    )[metric]
    found = estimate.metrics
    return {
        "dataset": dataset,
        "target": task["target"],
        "size": size,
        "seed": seed,
        "estimate": 100 * found[f"oof_{metric}"],
        "low": 100 * found[f"oof_{metric}_ci_low"],
        "high": 100 * found[f"oof_{metric}_ci_high"],
        "held_out": 100 * truth,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=list(DATASETS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--rows",
        choices=["test", "half"],
        default="test",
        help="rows scored: the test ones, or (to choose settings) the learning curves' "
        "validation rows (SemEval training halves, ArgQ dev topics)",
    )
    parser.add_argument("--set", dest="settings", action="append", default=[])
    args = parser.parse_args()
    rows = []
    for dataset in args.dataset or list(DATASETS):
        for task in tasks_of(dataset, data_root(), args.rows):
            for size in args.sizes:
                for seed in range(args.seeds):
                    if (found := one(dataset, task, size, seed, args.settings)) is not None:
                        rows.append(found)
    frame = pd.DataFrame(rows)
    frame["difference"] = frame["estimate"] - frame["held_out"]
    frame["inside"] = (frame["low"] <= frame["held_out"]) & (frame["held_out"] <= frame["high"])
    print(
        "| dataset | rows | runs | estimate | held-out | estimate - held-out | mean abs. "
        "difference | held-out inside the 95 % interval |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (dataset, size), group in frame.groupby(["dataset", "size"], sort=False):
        print(
            f"| {dataset} | {size} | {len(group)} | {group['estimate'].mean():.1f} | "
            f"{group['held_out'].mean():.1f} | {group['difference'].mean():+.1f} | "
            f"{np.abs(group['difference']).mean():.1f} | {group['inside'].mean():.0%} |"
        )


if __name__ == "__main__":
    main()
