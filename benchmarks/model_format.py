"""The model folder against the pickle of earlier versions: same predictions, load time, size.

Run on demand, not in the test suite:

    STANCE_DATA_DIR=../shared/data uv run --all-extras python benchmarks/model_format.py \
        --store sqlite:///OLD/mlflow.db --rows 50000 --encoder-rows 5000

``--store`` is an MLflow store whose training runs logged pickle models (an earlier commit's
``stance train``). For each run: its ``model.pkl`` is read through the old allow-list
(``train.pickled``), written as a model folder, and both are timed loading (median of
``--repeats`` loads in this one process, alternating pickle and folder) and measured on disk.
Then both predict the run's own dataset (up to ``--rows`` rows, ``--encoder-rows`` for models
that run the sentence encoder) and every label and probability is compared bit for bit.
Prints a markdown table; ``--json`` writes the rows too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else (path.stat().st_size)
    )


def _rows(model, limit: int):
    from train.config import Config
    from train.data import load_dataset

    config = Config.from_layers(model.config)
    data_dir = Path(os.environ.get("STANCE_DATA_DIR", REPO / "data"))
    if config.data.path.startswith("sample/"):
        data_dir = REPO / "data"
    rows = load_dataset(config.data, data_dir).rows
    return rows.iloc[:limit][["text", "target"]].reset_index(drop=True)


def measure(name: str, pickle_path: Path, out: Path, rows: int, repeats: int) -> dict:
    from train import modelfile, pickled
    from train.models import StanceModel

    old = pickled.load(pickle_path)
    folder = out / name
    modelfile.save(old, folder)
    pickle_s, folder_s = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        pickled.load(pickle_path)
        pickle_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        StanceModel.load(folder)
        folder_s.append(time.perf_counter() - started)
    new = StanceModel.load(folder)
    frame = _rows(old, rows)
    before, after = old.predict(frame), new.predict(frame)
    return {
        "model": name,
        "pickle_load_s": statistics.median(pickle_s),
        "folder_load_s": statistics.median(folder_s),
        "pickle_mb": _size(pickle_path) / 1e6,
        "folder_mb": _size(folder) / 1e6,
        "rows": len(frame),
        "identical": bool(before.equals(after)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--encoder-rows", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import mlflow

    mlflow.set_tracking_uri(args.store)
    out = REPO / "benchmarks" / "out" / "model_format"
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for run in mlflow.search_runs(search_all_experiments=True, output_format="list"):
        experiment = run.data.tags.get("stance.experiment") or run.info.run_id[:8]
        logged = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
            output_format="list",
        )
        if not logged:
            continue
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{logged[0].model_id}"))
        pickle_path = local / "artifacts" / "model.pkl"
        if not pickle_path.is_file():
            continue
        uses_encoder = any(key.startswith("features.embeddings") for key in run.data.params)
        rows = args.encoder_rows if uses_encoder else args.rows
        results.append(measure(experiment, pickle_path, out, rows, args.repeats))
        print(json.dumps(results[-1]), flush=True)
    print(
        "| model | pickle load (s) | folder load (s) | ratio | pickle MB | folder MB | ratio | "
        "rows compared | identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(
            f"| {r['model']} | {r['pickle_load_s']:.3f} | {r['folder_load_s']:.3f} | "
            f"{r['folder_load_s'] / r['pickle_load_s']:.2f}x | {r['pickle_mb']:.2f} | "
            f"{r['folder_mb']:.2f} | {r['folder_mb'] / r['pickle_mb']:.2f}x | {r['rows']:,} | "
            f"{'yes' if r['identical'] else 'NO'} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
