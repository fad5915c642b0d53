"""Learning curves on targets a model has not seen: does `stance select` pick better rows than
chance, and does starting from a model of other targets beat starting from nothing?

Protocol (issue 34), for each held-out target and each of ``--seeds`` seeds:

* SemEval-2016: each of the five targets in turn. The rows to annotate are that target's
  training tweets; its test tweets score each round. The prior is the fast experiment
  (semeval2016-fast.toml) trained on the other four targets' training tweets.
* ArgQ: five topics of the test split (its topics appear in no training row), each in turn. A
  topic's arguments are halved, seeded: one half to annotate, the other to score. The prior is
  the fast experiment (argq-fast.toml) trained on every training topic.

Each round adds ``--batch`` rows (25) chosen by :func:`train.selection.pick`, the function
`stance select` runs, with the labels revealed from the data as an annotator would give them,
up to ``--rounds`` rounds (8, so 200 rows); after each, the model is refitted on every row
annotated so far and scored on the held-out rows (F_avg on SemEval, macro-F1 on ArgQ).

Arms: the start (``scratch``: the model sees only the annotated rows; ``prior``: the same
model with the prior's probabilities as features, `model.init_from`) times the strategy
(``diverse``, ``random``). From scratch the first round has no model to ask: ``diverse``
takes it by ``typical`` (coverage alone, as `stance select --strategy typical` would with a
model that knows nothing of the target), ``random`` by a seeded draw; from the prior, every
round is chosen by the strategy. A model fitted on rows of one label only predicts that label; a
label no annotated row carries is never predicted (both, as a real first round would).

The new target's model is the sample experiment's (experiments/sample.toml: word and character
n-grams, target relatedness, sentiment, style, logistic regression with C = 10 and balanced
classes), made for a few hundred rows; ``--experiment`` and ``--set`` change it. Settings were
chosen with ``--rows half`` (SemEval) and ``--rows valid`` (ArgQ), never on test rows.

    STANCE_DATA_DIR=../shared/data python3 -m uv run --frozen python \\
        benchmarks/learning_curve.py --dataset semeval2016 --dataset argq

The model `stance new` writes adds MiniLM's vectors (train/scaffold.py): ``--set
'features.embeddings.runtime="onnx-int8"' --set features.embeddings.weight=4.0``.

Results: a markdown table on stdout, the curves as CSV and PNG in benchmarks/out/, and one
MLflow run per dataset (experiment ``learning-curves``) holding both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

from train import schema, tracking  # noqa: E402
from train.config import PUBLIC_LABELS, Config  # noqa: E402
from train.data import load_dataset  # noqa: E402
from train.fitting import fit_stance_model  # noqa: E402
from train.metrics import compute_metrics  # noqa: E402
from train.selection import pick  # noqa: E402
from train.sources import data_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SAMPLE = REPO / "experiments" / "sample.toml"
# The prior is the dataset's fast experiment trained on the other targets: the model a team
# with those targets would have, and one that trains in seconds.
DATASETS = {
    "semeval2016": {
        "format": "semeval2016",
        "path": "semeval2016-tweeteval",
        "metric": "f_avg",
        "prior": REPO / "experiments" / "semeval2016-fast.toml",
    },
    "argq": {
        "format": "argq",
        "path": "ibm-argq-30k/arg_quality_rank_30k.csv",
        "metric": "macro_f1",
        "prior": REPO / "experiments" / "argq-fast.toml",
    },
}
# model.prior_weight, chosen on ArgQ's dev topics (`--rows valid`, 2 seeds, a prototype of
# this `diverse`: 1 / 5 / 10 gave 83.92 / 84.46 / 84.27 macro-F1 at 50 rows from the prior).
PRIOR_WEIGHT = 5.0
ARGQ_TOPICS = 5


@dataclass(frozen=True)
class Recipe:
    """The models of one benchmark run: the new target's, and the prior's it may start from."""

    experiment: Path = SAMPLE
    settings: tuple[str, ...] = ()  # --set overrides of the new target's model
    prior_experiment: Path | None = None  # None: the dataset's fast experiment
    prior_settings: tuple[str, ...] = ()
    prior_weight: float = PRIOR_WEIGHT


def base_config(
    dataset,
    labels,
    experiment: Path = SAMPLE,
    settings: tuple[str, ...] = (),
    prior_path: str | None = None,
    prior_weight: float = 1.0,
) -> Config:
    """The experiment's model on the dataset's data and labels (only those annotated so far)."""
    spec = DATASETS[dataset]
    overrides = [
        f'data.format="{spec["format"]}"',
        f'data.path="{spec["path"]}"',
        f"data.labels={list(labels)!r}".replace("'", '"'),
        "data.use_weights=false",
        "data.on_bad_rows=quarantine",  # as the experiments of both datasets do
        # A few dozen rows hold no validation split to refit on.
        "model.refit_on_valid=false",
    ]
    if prior_path:
        overrides += [f'model.init_from="{prior_path}"', f"model.prior_weight={prior_weight}"]
    return Config.from_toml(experiment, [*overrides, *settings])


def tasks_of(dataset: str, root: Path, split: str) -> list[dict]:
    """One held-out target per entry: its rows to annotate, its rows to score (``split``:
    ``test``, or ``valid`` to choose settings), and the rows the prior learns from."""
    config = base_config(dataset, ())  # labels come from the loader for the public formats
    rows = load_dataset(config.data, root).rows
    train = rows[rows["split"] == "train"].reset_index(drop=True)
    held = []
    if dataset == "semeval2016":
        for target in sorted(train["target"].unique()):
            own = train[train["target"] == target].reset_index(drop=True)
            if split == "half":
                # To choose settings: the target's training tweets halved, seeded; 200 to 350
                # scored tweets a target against validation's 60 to 80, and test untouched.
                half = np.random.default_rng(1).permutation(len(own)) < len(own) // 2
                pool, score = own[half], own[~half]
            else:
                pool = own
                score = rows[(rows["split"] == split) & (rows["target"] == target)]
            held.append(
                {
                    "target": target,
                    "pool": pool.reset_index(drop=True),
                    "score": score.reset_index(drop=True),
                    "prior_rows": train[train["target"] != target],
                }
            )
    else:
        # ArgQ splits by topic: a test (or, to choose settings, dev) topic has no training row.
        unseen = rows[rows["split"] == ("valid" if split == "half" else split)]
        topics = sorted(unseen["target"].unique())
        drawn = np.random.default_rng(0).choice(len(topics), ARGQ_TOPICS, replace=False)
        for topic in sorted(topics[i] for i in drawn):
            own = unseen[unseen["target"] == topic].reset_index(drop=True)
            half = np.random.default_rng(1).permutation(len(own)) < len(own) // 2
            held.append(
                {
                    "target": topic,
                    "pool": own[half].reset_index(drop=True),
                    "score": own[~half].reset_index(drop=True),
                    "prior_rows": train,
                }
            )
    return held


def fit(dataset, rows: pd.DataFrame, labels, recipe: Recipe, prior_path: str | None = None):
    """A model of ``rows``, on the labels they carry; None where they carry one label only."""
    present = tuple(label for label in labels if label in set(rows["label"]))
    if len(present) < 2:
        return None, present
    config = base_config(
        dataset, present, recipe.experiment, recipe.settings, prior_path, recipe.prior_weight
    )
    return fit_stance_model(config, rows.assign(weight=1.0)), present


def fit_prior(dataset, rows: pd.DataFrame, labels, recipe: Recipe):
    """The model of the other targets that the ``prior`` arm starts from."""
    experiment = recipe.prior_experiment or DATASETS[dataset]["prior"]
    config = base_config(dataset, labels, experiment, recipe.prior_settings)
    return fit_stance_model(config, rows.assign(weight=1.0))


def curve(dataset, held, labels, start, strategy, seed, prior_path, recipe, batch, rounds):
    """One learning curve: a row per round."""
    metric = DATASETS[dataset]["metric"]
    pool, score = held["pool"], held["score"]
    prior = prior_path if start == "prior" else None
    chosen = np.zeros(len(pool), dtype=bool)
    model = None
    if start in ("prior", "joined"):  # the model of the other targets chooses the first round
        from train.fitting import prior_model

        model = prior_model(prior_path)
    results = []
    for round_number in range(1, rounds + 1):
        left = np.flatnonzero(~chosen)
        draw = seed * 1000 + round_number  # each round its own stream, as a new `--seed` would be
        if model is None and strategy == "diverse":
            # No model to ask yet: `stance select --strategy typical`, coverage alone.
            flat = np.full((len(left), len(labels)), 1.0 / len(labels))
            picks = left[pick(pool["text"].iloc[left].tolist(), flat, batch, "typical", draw)]
        elif model is None:  # random's first round from scratch, or after a one-label model
            picks = left[np.random.default_rng(draw).permutation(len(left))[:batch]]
        else:
            proba = model.predict(pool.iloc[left]).filter(like="proba_").to_numpy()
            picks = left[pick(pool["text"].iloc[left].tolist(), proba, batch, strategy, draw)]
        chosen[picks] = True
        annotated = pool[chosen]
        if start == "joined":  # the other targets' rows and the new ones, one training set
            annotated = pd.concat([held["prior_rows"], annotated], ignore_index=True)
        fitted, present = fit(dataset, annotated, labels, recipe, prior)
        if fitted is None:
            predicted = np.full(len(score), present[0], dtype=object)
            model = None if not prior else model
        else:
            predicted = fitted.predict(score)["label"].to_numpy()
            model = fitted
        value = compute_metrics(score["label"], predicted, labels)[metric]
        results.append(
            {
                "dataset": dataset,
                "target": held["target"],
                "start": start,
                "strategy": strategy,
                "seed": seed,
                # Rows asked for; a topic smaller than that gives all it has (one ArgQ topic
                # has 195 to annotate), so its last round repeats its whole pool.
                "annotated": round_number * batch,
                "rows_annotated": int(chosen.sum()),
                metric: 100 * value,
            }
        )
    return results


def run(args, dataset: str, recipe: Recipe) -> pd.DataFrame:
    held = tasks_of(dataset, data_root(), args.rows)
    labels = PUBLIC_LABELS[DATASETS[dataset]["format"]]
    OUT.mkdir(parents=True, exist_ok=True)
    work, priors = [], {}
    for entry in held:
        key = id(entry["prior_rows"])  # ArgQ's topics share one prior: fit it once
        if key not in priors and set(args.starts) - {"scratch"}:
            fitted = fit_prior(dataset, entry["prior_rows"], labels, recipe)
            priors[key] = OUT / f"learning_curve_prior_{dataset}_{len(priors)}.pkl"
            fitted.save(priors[key])
        for start in args.starts:
            for strategy in args.strategies:
                for seed in range(args.seeds):
                    work.append((entry, start, strategy, seed, str(priors.get(key))))
    rows = Parallel(n_jobs=args.jobs)(
        delayed(curve)(
            dataset, entry, labels, start, strategy, seed, prior, recipe, args.batch, args.rounds
        )
        for entry, start, strategy, seed, prior in work
    )
    return pd.DataFrame([row for part in rows for row in part])


def summary(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean over targets of the per-target mean over seeds, and the spread (sd over seeds of
    the mean over targets), per arm and number of annotations."""
    per_seed = frame.groupby(["start", "strategy", "seed", "annotated"])[metric].mean()
    table = per_seed.groupby(["start", "strategy", "annotated"]).agg(["mean", "std"])
    return table.reset_index()


def figure(table: pd.DataFrame, metric: str, dataset: str):
    fig, axis = plt.subplots(figsize=(6, 4))
    # Any other strategy `pick` knows (typical, margin, entropy) is dotted.
    styles = {"diverse": "-", "random": "--"}
    colors = {"prior": "tab:blue", "scratch": "tab:orange", "joined": "tab:green"}
    for (start, strategy), arm in table.groupby(["start", "strategy"]):
        axis.errorbar(
            arm["annotated"],
            arm["mean"],
            yerr=arm["std"],
            label=f"{start}, {strategy}",
            linestyle=styles.get(strategy, ":"),
            color=colors[start],
            capsize=2,
        )
    axis.set_xlabel("rows annotated on the unseen target")
    axis.set_ylabel(f"{metric} on its held-out rows")
    axis.set_title(f"{dataset}: learning curves\n(mean over targets, sd over seeds)", fontsize=10)
    axis.legend()
    fig.tight_layout()
    return fig


def markdown(table: pd.DataFrame, metric: str, dataset: str) -> str:
    wide = table.pivot_table(index=["start", "strategy"], columns="annotated", values="mean")
    spread = table.pivot_table(
        index=["start", "strategy"], columns="annotated", values="std", dropna=False
    )
    lines = [
        f"### {dataset}: {metric} by rows annotated (mean over targets; ± sd over seeds)",
        "",
        "| start | strategy | " + " | ".join(str(c) for c in wide.columns) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in wide.columns) + " |",
    ]
    for (start, strategy), values in wide.iterrows():
        cells = [f"{v:.2f} ± {spread.loc[(start, strategy), c]:.2f}" for c, v in values.items()]
        lines.append(f"| {start} | {strategy} | " + " | ".join(cells) + " |")
    lines.append("")
    for n in (50, 100):
        if n not in wide.columns:
            continue
        for start in ("scratch", "prior"):
            if {(start, "diverse"), (start, "random")} - set(wide.index):
                continue
            gain = wide.loc[(start, "diverse"), n] - wide.loc[(start, "random"), n]
            lines.append(f"- {n} rows, from {start}: diverse - random = {gain:+.2f} points")
    if 50 in wide.columns:
        for strategy in ("diverse", "random"):
            if {("prior", strategy), ("scratch", strategy)} - set(wide.index):
                continue
            gain = wide.loc[("prior", strategy), 50] - wide.loc[("scratch", strategy), 50]
            lines.append(f"- 50 rows, {strategy}: prior - scratch = {gain:+.2f} points")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=sorted(DATASETS), required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--rows",
        choices=["test", "valid", "half"],
        default="test",
        help="rows to score: test, or to choose settings valid (SemEval's validation tweets, "
        "ArgQ's dev topics) or half (SemEval: half of each target's training tweets, the other "
        "half to annotate; ArgQ: as valid)",
    )
    parser.add_argument(
        "--prior-weight", type=float, default=PRIOR_WEIGHT, help="model.prior_weight"
    )
    parser.add_argument(
        "--experiment", type=Path, default=SAMPLE, help="the new target's model (default: sample)"
    )
    parser.add_argument("--set", action="append", default=[], help="override of --experiment")
    parser.add_argument(
        "--prior-experiment",
        type=Path,
        default=None,
        help="the prior's model (default: the dataset's fast experiment)",
    )
    parser.add_argument(
        "--prior-set", action="append", default=[], help="override of the prior's experiment"
    )
    parser.add_argument("--starts", nargs="+", default=["scratch", "prior"])
    parser.add_argument("--strategies", nargs="+", default=["diverse", "random"])
    args = parser.parse_args()
    recipe = Recipe(
        experiment=args.experiment,
        settings=tuple(args.set),
        prior_experiment=args.prior_experiment,
        prior_settings=tuple(args.prior_set),
        prior_weight=args.prior_weight,
    )
    for dataset in args.dataset:
        started = time.perf_counter()
        frame = run(args, dataset, recipe)
        seconds = time.perf_counter() - started
        metric = DATASETS[dataset]["metric"]
        table = summary(frame, metric)
        stem = OUT / f"learning_curve_{dataset}_{args.rows}"
        frame.to_csv(f"{stem}.csv", index=False)
        fig = figure(table, metric, dataset)
        fig.savefig(f"{stem}.png", dpi=120)
        text = markdown(table, metric, dataset)
        print(text + f"\n\n{dataset}: {seconds:.0f} s wall, --jobs {args.jobs}\n", flush=True)
        params = {
            "dataset": dataset,
            "seeds": args.seeds,
            "batch": args.batch,
            "rounds": args.rounds,
            "model": str(recipe.experiment.resolve().relative_to(REPO)),
            "model_settings": " ".join(recipe.settings) or "none",
            "prior_model": str(
                (recipe.prior_experiment or DATASETS[dataset]["prior"]).resolve().relative_to(REPO)
            ),
            "prior_settings": " ".join(recipe.prior_settings) or "none",
            "rows": args.rows,
            "prior_weight": args.prior_weight,
        }
        log_learning_curve(
            "learning-curves", params, frame, table, text, fig, {"wall_seconds": seconds}
        )
        plt.close(fig)


def log_learning_curve(
    experiment: str,
    params: dict,
    curves: pd.DataFrame,
    table: pd.DataFrame,
    text: str,
    figure,
    metrics: dict[str, float],
) -> str:
    """This benchmark as a run of its own: every round of every curve, the summary table, its
    markdown and the figure."""
    tags = {schema.BENCHMARK: "learning_curve"}
    with tracking.command_run(experiment, {}, tags) as run_id:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_text(curves.to_csv(index=False), "learning_curve/curves.csv")
        mlflow.log_text(table.to_csv(index=False), "learning_curve/summary.csv")
        mlflow.log_text(text, "learning_curve/summary.md")
        mlflow.log_figure(figure, "learning_curve/curves.png")
    return run_id


if __name__ == "__main__":
    sys.exit(main())
