"""Scaling of `stance predict --engine spark` on a standalone cluster, one large CSV file in.

Run on demand, not in the test suite:

    STANCE_DATA_DIR=../shared/data python3 -m uv run --frozen --all-extras \
        python benchmarks/spark_cluster.py --model MODEL --rows 1000000

MODEL is a model folder or a store URI (with MLFLOW_TRACKING_URI set). Each route is a whole
command (start-up, JVM, executors and model load included), timed ``--repeats`` times, the
routes alternating so that a noisy moment of the machine hits all of them; medians, and ratios:

- ``local``: ``stance predict MODEL rows.csv -o out.parquet --jobs 2``;
- ``local[2]``: ``--engine spark --master local[2]``, one JVM;
- ``cluster-1``: ``--master spark://...`` on a cluster of two one-core workers (each a process of
  its own, started from PySpark's launcher by tests/servers.py, each pinned to a CPU of its own
  with everything it starts), the application held to one core (``spark.cores.max=1``): one
  executor;
- ``cluster-2``: the same cluster, both workers.

The file is one CSV of distinct texts (benchmarks/speed_tiers.py's ``build_input``): one task
would read it whole, so the routes scale only because the driver cuts it into shares
(train/ranges.py). After the first round every Spark route's output is checked against the local
route's: labels equal, probabilities within 1e-9, the same rejects. Results: markdown on stdout,
JSON in benchmarks/out/spark_cluster.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from speed_tiers import OUT, build_input, save_timings, timed  # noqa: E402

from tests.servers import spark_cluster  # noqa: E402


def same_output(spark_folder: Path, local_file: Path) -> None:
    spark_out = pd.read_parquet(spark_folder).reset_index(drop=True)
    local_out = pd.read_parquet(local_file).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        spark_out, local_out, check_dtype=False, check_exact=False, rtol=0, atol=1e-9
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder, runs:/RUN/model, ...")
    parser.add_argument("--dataset", default="argq", choices=["argq", "semeval2016"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    csv = build_input(args.dataset, args.rows)
    work = OUT / "spark_cluster"
    stance = [sys.executable, "-m", "train.cli", "predict", args.model, str(csv)]
    # The commands run with this process's environment (speed_tiers.timed), set here.
    os.environ |= {
        "PYTHONPATH": str(REPO),
        # The executors' Python: this environment, at the same path on every node.
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    with tempfile.TemporaryDirectory(prefix="stance-cluster-") as folder:
        with spark_cluster(Path(folder), workers=2, memory="2g", pin=True) as master:
            spark = ["--engine", "spark", "--master"]
            routes = {
                "local": (stance + ["-o", str(work / "local.parquet"), "--jobs", "2"], {}),
                "local[2]": (stance + ["-o", str(work / "local2")] + spark + ["local[2]"], {}),
                "cluster-1": (
                    stance + ["-o", str(work / "cluster-1")] + spark + [master],
                    {"PYSPARK_SUBMIT_ARGS": "--conf spark.cores.max=1 pyspark-shell"},
                ),
                "cluster-2": (stance + ["-o", str(work / "cluster-2")] + spark + [master], {}),
            }
            timings: dict[str, list[tuple[float, float]]] = {name: [] for name in routes}
            for repeat in range(args.repeats):
                for name, (command, extra) in routes.items():
                    shutil.rmtree(work / Path(command[command.index("-o") + 1]).name, True)
                    work.mkdir(parents=True, exist_ok=True)
                    os.environ.update(extra)
                    try:
                        timings[name].append(timed(command))
                    finally:
                        for key in extra:
                            del os.environ[key]
                    print(f"{name}: {timings[name][-1][0]:.1f} s", file=sys.stderr, flush=True)
                if repeat == 0:
                    for name in ("local2", "cluster-1", "cluster-2"):
                        same_output(work / name, work / "local.parquet")
                    print("outputs: the same as the local route's", file=sys.stderr)
    medians = {name: statistics.median(s for s, _ in runs) for name, runs in timings.items()}
    print("| route | rows | median s | rows/s | vs local --jobs 2 | vs cluster-1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in timings:
        print(
            f"| {name} | {args.rows:,} | {medians[name]:.1f} | {args.rows / medians[name]:,.0f} | "
            f"{medians['local'] / medians[name]:.2f}x | "
            f"{medians['cluster-1'] / medians[name]:.2f}x |"
        )
    save_timings("spark_cluster", args.model, args.rows, timings)


if __name__ == "__main__":
    main()
