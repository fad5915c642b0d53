"""Headline figures and feature ablations for the public-dataset experiments.

Run on demand, not in the test suite (each dataset takes 5-20 minutes):

    STANCE_DATA_DIR=../shared/data uv run --all-extras python benchmarks/ablation.py
    semeval2016 fnc1 argq

For each experiment it runs, through the same `train()` that `stance train`
uses, with an MLflow store of its own (benchmarks/out/mlflow.db):

1. the experiment as written: test headline metric, its 95 % bootstrap
   interval, fit seconds (cold: the first run in the process, so sentence
   embeddings are computed, not recalled), model size (pickled bytes), and
   prediction speed on the test split (median of 3, in-process, embedding
   memo cleared before each pass so every text is encoded again);
2. a baseline: word 1-2-gram TF-IDF and a joint logistic regression;
3. the experiment with each of its feature steps removed in turn.

Ablation rows score the test split once per row; nothing here feeds back
into an experiment file. Results go to stdout as markdown and to
benchmarks/out/ablation_<experiment>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "out"

BASELINE = [
    "model.strategy=joint",
    "model.classifier=logreg",
    "model.refit_on_valid=false",
    "model.label_weights={}",
    "model.clf={}",
]


def _only_word_ngrams(config) -> list[str]:
    return [f"features.{step}=false" for step in config.features if step != "word"] + [
        "features.word={ngram_range=[1,2]}"
    ]


def _run(experiment: Path, overrides: list[str], data_dir: str, tag: str) -> dict:
    from features import embeddings
    from train.config import Config
    from train.data import load_dataset, split_dataset
    from train.sources import data_root
    from train.training import train

    config = Config.from_toml(experiment, overrides)
    result = train(
        config,
        data_dir,
        log=lambda message: None,
        extra_tags={"benchmark": "ablation", "ablation": tag},
    )
    metrics = result.metrics
    headline = config.headline_metric
    row = {
        "row": tag,
        "overrides": overrides,
        "run_id": result.run_id,
        "test": metrics[f"test_{headline}"],
        "ci_low": metrics.get(f"test_{headline}_ci_low"),
        "ci_high": metrics.get(f"test_{headline}_ci_high"),
        "test_macro_f1": metrics["test_macro_f1"],
        "fit_seconds": metrics["train_seconds"] + metrics.get("refit_seconds", 0.0),
        "model_bytes": len(pickle.dumps(result.model, protocol=pickle.HIGHEST_PROTOCOL)),
    }
    if tag == "experiment":
        test = split_dataset(
            load_dataset(config.data, data_root(data_dir)).rows, config.split, config.seed
        )["test"]
        seconds = []
        for _ in range(3):
            embeddings._MEMO.clear()  # time the encoder too, as a new process would
            started = time.perf_counter()
            result.model.predict(test)
            seconds.append(time.perf_counter() - started)
        row["predict_rows_per_second"] = len(test) / statistics.median(seconds)
        row["predict_rows"] = len(test)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", help="names under experiments/, e.g. semeval2016")
    parser.add_argument("--data-dir", default=os.environ.get("STANCE_DATA_DIR", "../shared/data"))
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{OUT / 'mlflow.db'}")

    from train.config import Config

    for name in args.experiments:
        experiment = REPO / "experiments" / f"{name}.toml"
        config = Config.from_toml(experiment)
        plan = [("experiment", []), ("baseline", BASELINE + _only_word_ngrams(config))]
        plan += [(f"without {step}", [f"features.{step}=false"]) for step in config.features]
        rows = []
        for tag, overrides in plan:
            started = time.perf_counter()
            rows.append(_run(experiment, overrides, args.data_dir, tag))
            print(
                f"{name}: {tag}: {rows[-1]['test'] * 100:.2f} "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        (OUT / f"ablation_{name}.json").write_text(json.dumps(rows, indent=2))
        full = rows[0]
        print(f"\n### {name} ({config.headline_metric}, test)\n")
        print(
            f"experiment: {full['test'] * 100:.2f} (95 % bootstrap "
            f"{full['ci_low'] * 100:.2f}-{full['ci_high'] * 100:.2f}), "
            f"macro-F1 {full['test_macro_f1'] * 100:.2f}, fit {full['fit_seconds']:.1f} s, model "
            f"{full['model_bytes'] / 1e6:.1f} MB, "
            f"predict {full['predict_rows_per_second']:,.0f} rows/s on {full['predict_rows']:,} "
            "test rows (median of 3)\n"
        )
        print("| configuration | headline | change | macro-F1 | fit s | run |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for row in rows:
            change = "" if row is full else f"{(row['test'] - full['test']) * 100:+.2f}"
            print(
                f"| {row['row']} | {row['test'] * 100:.2f} | {change} | "
                f"{row['test_macro_f1'] * 100:.2f} | {row['fit_seconds']:.1f} | "
                f"{row['run_id'][:8]} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
