"""Rows/s of `stance predict --engine spark` against the local route, on the same rows.

Run on demand, not in the test suite (a logged model: runs:/ or models:/, in the store that
MLFLOW_TRACKING_URI names):

    STANCE_DATA_DIR=../shared/data MLFLOW_TRACKING_URI=sqlite:///STORE.db \
        python3 -m uv run --frozen --all-extras \
        python benchmarks/spark_predict.py --model runs:/RUN/model --rows 1000000

Each route is a whole command (start-up, JVM and model load included), timed ``--repeats`` times,
the routes alternating so that a noisy moment of the machine hits all of them; medians, and
ratios to the local route of the same run:

- ``local``: ``stance predict MODEL rows.csv -o out.parquet --jobs 2``;
- ``spark-csv``: ``stance predict MODEL rows.csv -o out/ --engine spark --master local[2]``, the
  same file (one task reads it whole, then the rows are spread over the cores);
- ``spark-parquet``: the same rows as 8 Parquet files, as a Spark job usually finds its input;
- ``spark-udf``: MLflow's ``mlflow.pyfunc.spark_udf`` over the logged model (env_manager local),
  the 8 Parquet files in, Parquet out: no rejects, no counts, so a floor of what that route costs.

The rows are distinct texts (benchmarks/speed_tiers.py's ``build_input``). Results: markdown on
stdout, JSON in benchmarks/out/spark_predict.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from speed_tiers import OUT, build_input, save_timings, timed  # noqa: E402

MASTER = "local[2]"


def parquet_parts(csv: Path, parts: int) -> Path:
    folder = csv.with_suffix(f".{parts}parts")
    if folder.exists():
        return folder
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    folder.mkdir()
    size = -(-len(frame) // parts)
    for index in range(parts):
        frame.iloc[index * size : (index + 1) * size].to_parquet(
            folder / f"part-{index:03d}.parquet", index=False
        )
    return folder


def udf_route(model: str, source: str, output: str) -> None:
    """MLflow's spark_udf over the logged model: what the README's recipe ran before
    --engine spark."""
    import os

    import mlflow
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from train.artifact import open_model
    from train.store import full_run_uri

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    labels = open_model(model).model.labels
    model = full_run_uri(model)  # spark_udf takes a run's whole id only
    spark = (
        SparkSession.builder.master(MASTER)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    schema = "label string, " + ", ".join(f"proba_{label} double" for label in labels)
    predict = mlflow.pyfunc.spark_udf(spark, model, result_type=schema, env_manager="local")
    rows = spark.read.parquet(source)
    rows.select("id", predict(F.struct("text", "target")).alias("p")).select(
        "id", "p.*"
    ).write.mode("overwrite").parquet(output)
    spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="runs:/RUN/model or models:/NAME@ALIAS")
    parser.add_argument("--dataset", default="argq", choices=["argq", "semeval2016"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--udf-route", nargs=2, metavar=("SOURCE", "OUTPUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.udf_route:
        udf_route(args.model, *args.udf_route)
        return

    csv = build_input(args.dataset, args.rows)
    parts = parquet_parts(csv, 8)
    work = OUT / "spark_predict"
    stance = [sys.executable, "-m", "train.cli", "predict", args.model]
    routes = {
        "local": stance + [str(csv), "-o", str(work / "local.parquet"), "--jobs", "2"],
        "spark-csv": stance
        + [str(csv), "-o", str(work / "spark-csv"), "--engine", "spark", "--master", MASTER],
        "spark-parquet": stance
        + [str(parts), "-o", str(work / "spark-parquet"), "--engine", "spark", "--master", MASTER],
        "spark-udf": [
            sys.executable,
            __file__,
            "--model",
            args.model,
            "--udf-route",
            str(parts),
            str(work / "spark-udf"),
        ],
    }
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in routes}
    for _ in range(args.repeats):
        for name, command in routes.items():
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            timings[name].append(timed(command))
            print(f"{name}: {timings[name][-1][0]:.1f} s", file=sys.stderr, flush=True)
    medians = {name: statistics.median(s for s, _ in runs) for name, runs in timings.items()}
    print("| route | rows | median s | rows/s | vs local | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in timings.items():
        print(
            f"| {name} | {args.rows:,} | {medians[name]:.1f} | {args.rows / medians[name]:,.0f} | "
            f"{medians['local'] / medians[name]:.2f}x | {max(r for _, r in runs):,.0f} |"
        )
    save_timings(
        "spark_predict",
        args.model,
        args.rows,
        timings,
        peak_rss_mib={name: max(r for _, r in runs) for name, runs in timings.items()},
    )


if __name__ == "__main__":
    main()
