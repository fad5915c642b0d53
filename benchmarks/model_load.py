"""What reading models through the allow-list and checking their hash costs: load time and
prediction speed, before and after.

Run on demand, not in the test suite:

    STANCE_DATA_DIR=../shared/data uv run --extra embeddings python benchmarks/model_load.py --base
    235df35

"Before" is the code at ``--base`` (plain ``pickle.load``, no hash), checked out with
``git worktree`` into benchmarks/out/; "after" is this tree. Both load the same model
files and predict the same input, alternating before/after ``--repeats`` times in fresh
processes, so the ratios compare runs made minutes apart on the same machine.

1. Fits two models without MLflow: the word 1-2-gram SVM of benchmarks/predict_speed.py
   (the largest vocabulary, so the largest pickle) and the SemEval-2016 experiment
   (sentence embeddings, per-target models).
2. Logs each to a SQLite MLflow store under benchmarks/out/, to time ``runs:/`` loads
   (download, hash check and allow-list after; download and pickle before).
3. Writes rows of distinct texts (200,000 for the word model, 3,000 for the encoder
   model): ArgQ arguments, each joined with the start of another, none repeated.
4. Per tree and model: the seconds to load the file and to load ``runs:/ID/model`` (the
   median of 6 loads in one process, after a first that also opens the store), and
   ``stance predict --jobs 2`` rows/s over the input (the whole command, load included).

Results go to stdout as markdown and to benchmarks/out/model_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "out"

# Run in each tree's own process, with that tree first on the path: the model file and
# the input are the same for both, only the code that reads them differs.
DRIVER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from train import predict
from train.models import StanceModel
kind, path, rows = sys.argv[2], sys.argv[3], sys.argv[4]
def load():
    if kind == "file":
        StanceModel.load(path)
    elif hasattr(predict, "load_model"):
        predict.load_model(path)
    else:
        StanceModel.load(predict.resolve_model(path))
times = []
for _ in range(7):  # the first pays for opening the store; the median of the rest is the load
    started = time.perf_counter()
    load()
    times.append(time.perf_counter() - started)
result = {"first_load_s": times[0], "load_s": sorted(times[1:])[3]}
if rows != "-":
    out = Path(sys.argv[5])
    summary = predict.predict_file(path, rows, str(out), predict.PredictOptions(jobs=2), log=lambda
    m: None)
    result["rows_per_s"] = summary.rows_read / summary.seconds
    out.unlink()
print(json.dumps(result))
"""


def fit_models(root: Path) -> dict[str, Path]:
    from benchmarks.predict_speed import MODELS, fit_and_save

    return {name: fit_and_save(name, *MODELS[name], root) for name in ("word12_svm", "semeval2016")}


def log_models(paths: dict[str, Path]) -> dict[str, str]:
    """Each model logged in a run of a store under benchmarks/out/; returns runs:/ URIs."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{OUT / 'model_load.db'}"
    import mlflow

    from train import tracking
    from train.models import StanceModel

    uris = {}
    for name, path in paths.items():
        model = StanceModel.load(path)
        with tracking.start_run("model-load-benchmark", {"benchmark": name}) as run_id:
            tracking.log_model(model, pd.DataFrame({"text": ["a sentence"], "target": ["Atheism"]}))
        uris[name] = f"runs:/{run_id}/model"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return uris


def distinct_rows(root: Path, n: int) -> Path:
    path = OUT / f"distinct_{n}.csv"
    if path.exists():
        return path
    frame = pd.read_csv(root / "ibm-argq-30k" / "arg_quality_rank_30k.csv")
    arguments = frame["argument"].tolist()
    rows = []
    for i in range(n):
        # The second index also moves with each pass over the arguments, so no pair repeats.
        first, second = (
            arguments[i % len(arguments)],
            arguments[(i * 7919 + (i // len(arguments)) * 104729 + 13) % len(arguments)],
        )
        rows.append(
            (f"{first} {' '.join(second.split()[:8])}", frame["topic"].iloc[i % len(arguments)])
        )
    table = pd.DataFrame(rows, columns=["text", "target"]).drop_duplicates("text")
    table.to_csv(path, index=False)
    return path


def checkout(base: str) -> Path:
    tree = OUT / f"base-{base}"
    if not tree.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), base],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    return tree


def measure(tree: Path, kind: str, model: str, rows: Path | None) -> dict:
    out = OUT / f"predicted_{os.getpid()}.csv"
    command = [
        sys.executable,
        "-c",
        DRIVER,
        str(tree),
        kind,
        model,
        str(rows) if rows else "-",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit before the change, e.g. 235df35")
    parser.add_argument(
        "--rows", type=int, default=200_000, help="rows predicted by the word model"
    )
    parser.add_argument(
        "--encoder-rows",
        type=int,
        default=3_000,
        help="rows predicted by the SemEval model, which runs a sentence encoder",
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    from train.data import data_root

    root = data_root()
    paths = fit_models(root)
    uris = log_models(paths)
    inputs = {
        "word12_svm": distinct_rows(root, args.rows),
        "semeval2016": distinct_rows(root, args.encoder_rows),
    }
    trees = {"before": checkout(args.base), "after": REPO}
    results = {
        name: {tree: {"file_load_s": [], "runs_load_s": [], "rows_per_s": []} for tree in trees}
        for name in paths
    }
    for repeat in range(args.repeats):
        for name in paths:
            for label, tree in trees.items():
                file_run = measure(tree, "file", str(paths[name]), inputs[name])
                runs_run = measure(tree, "runs", uris[name], None)
                entry = results[name][label]
                entry["file_load_s"].append(file_run["load_s"])
                entry["rows_per_s"].append(file_run["rows_per_s"])
                entry["runs_load_s"].append(runs_run["load_s"])
                print(
                    f"repeat {repeat + 1} {name} {label}: {file_run} runs:/ "
                    f"{runs_run['load_s']:.3f}s",
                    file=sys.stderr,
                )
    counts = {name: len(pd.read_csv(path)) for name, path in inputs.items()}
    (OUT / "model_load.json").write_text(
        json.dumps({"base": args.base, "rows": counts, "results": results}, indent=2)
    )
    print(
        "| model | file size | rows | load (file) before / after | load (runs:/) before / after | "
        "rows/s before / after | speed ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, by_tree in results.items():
        median = {
            tree: {k: statistics.median(v) for k, v in values.items()}
            for tree, values in by_tree.items()
        }
        before, after = median["before"], median["after"]
        size = paths[name].stat().st_size / 2**20
        print(
            f"| {name} | {size:.1f} MB | {counts[name]:,} | {before['file_load_s']:.3f} s / "
            f"{after['file_load_s']:.3f} s ({before['file_load_s'] / after['file_load_s']:.2f}x) "
            f"| {before['runs_load_s']:.3f} s / {after['runs_load_s']:.3f} s "
            f"({before['runs_load_s'] / after['runs_load_s']:.2f}x) "
            f"| {before['rows_per_s']:,.0f} / {after['rows_per_s']:,.0f} | "
            f"{after['rows_per_s'] / before['rows_per_s']:.2f}x |"
        )


if __name__ == "__main__":
    main()
