"""Score configurations on the validation split only: the fit on train, the headline on valid,
and how fast the fitted model predicts the validation rows in this process.

The test split is never read here (each experiment's final configuration is scored on test
once, by ``stance train``). Used to choose the fast experiments of experiments/*-fast.toml:

    STANCE_DATA_DIR=../shared/data python3 -m uv run --frozen --all-extras \
        python benchmarks/tune_on_valid.py experiments/semeval2016-fast.toml \
        --variant "" --variant "clf__C=0.1" --variant "features.char=false"

Each ``--variant`` is a space-separated list of ``--set`` overrides ("" is the file as written).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from train.config import Config
from train.data import load_dataset, split_dataset
from train.fitting import fit_stance_model
from train.metrics import compute_metrics
from train.sources import data_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=3, help="timed prediction passes")
    args = parser.parse_args()
    base = Config.from_toml(args.experiment)
    data = load_dataset(base.data, data_root(None))
    splits = split_dataset(data.rows, base.split, base.seed)
    train, valid = splits["train"], splits["valid"]
    for variant in args.variant or [""]:
        config = Config.from_toml(args.experiment, variant.split())
        started = time.perf_counter()
        model = fit_stance_model(config, train)
        fit_seconds = time.perf_counter() - started
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            predicted = model.predict(valid)["label"].to_numpy()
            seconds.append(time.perf_counter() - started)
        metrics = compute_metrics(valid["label"], predicted, config.labels, valid["target"])
        result = {
            "variant": variant or "(as written)",
            f"valid_{config.headline_metric}": round(100 * metrics[config.headline_metric], 2),
            "valid_macro_f1": round(100 * metrics["macro_f1"], 2),
            "fit_s": round(fit_seconds, 1),
            "rows_per_s": round(len(valid) / statistics.median(seconds)),
            "rows": len(valid),
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
