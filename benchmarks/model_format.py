"""The model folder against the pickle of earlier versions: same predictions, load time, size.

Run on demand, not in the test suite:

    STANCE_DATA_DIR=../shared/data uv run --all-extras python benchmarks/model_format.py \
        --store sqlite:///OLD/mlflow.db --old-checkout OLD_TREE --rows 50000 \
        --pickle word12_svm=OLD_TREE/benchmarks/out/models/word12_svm.pkl \
        --throughput argq-fast word12_svm

``--store`` is an MLflow store whose training runs logged pickle models (an earlier commit's
``stance train``). For each run: its ``model.pkl`` is read through the old allow-list
(``train.pickled``), written as a model folder, and both are timed loading (median of
``--repeats`` loads in this one process, alternating pickle and folder) and measured on disk.
Then both predict ``--rows`` rows of the run's own dataset (``--encoder-rows`` for models that
run the sentence encoder; a smaller dataset is topped up with distinct texts made from its own,
each joined with the first words of another) and every label and probability is compared bit
for bit.
With ``--old-checkout`` (a ``git worktree`` of that earlier commit, whose ``stance`` read
pickles), two more checks run the two trees' own ``stance predict`` as subprocesses:

- the two articles of ../shared/documents with ``--documents``: the output files are compared
  byte for byte, for every model;
- for the models named by ``--throughput``: ``stance predict --jobs 2`` over
  ``--throughput-rows`` distinct ArgQ rows (each argument joined with the first words of
  another), the old tree with the pickle against this tree with the folder, alternating,
  ``--throughput-repeats`` times; the median rows/s of each (whole command, load included).

``--pickle NAME=PATH`` adds a pickle that is not in the store (the 160k-feature word model of
benchmarks/predict_speed.py, fitted at the earlier commit). Prints markdown tables; ``--json``
writes the rows too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

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

    # A cascade's own config names no data; it predicts its accurate model's rows.
    config = Config.from_layers(getattr(model, "accurate", model).config)
    data_dir = Path(os.environ.get("STANCE_DATA_DIR", REPO / "data"))
    if config.data.path.startswith("sample/"):
        data_dir = REPO / "data"
    rows = load_dataset(config.data, data_dir).rows[["text", "target"]]
    if len(rows) < limit:
        # A dataset smaller than the limit is topped up with distinct texts of its own: each of
        # its texts joined with the first words of another, under the first one's target.
        from speed_tiers import distinct_rows

        more = distinct_rows(rows["text"].tolist(), rows["target"].tolist(), limit - len(rows))
        rows = pd.concat([rows, more[["text", "target"]]], ignore_index=True)
    return rows.iloc[:limit].reset_index(drop=True)


def _stance(tree: Path, args: list[str]) -> float:
    """Seconds ``stance ARGS`` took when run from ``tree``; stops the benchmark if it failed."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "train.cli", *args], cwd=tree, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"stance {' '.join(args)} in {tree} failed:\n{done.stderr[-2000:]}")
    return seconds


def same_documents(name: str, pickle_path: Path, folder: Path, old_tree: Path, out: Path) -> bool:
    """Whether the old tree's pickle and this tree's folder write the same bytes for the two
    articles with --documents."""
    documents = REPO.parent / "shared" / "documents"
    written = []
    for tree, model in ((old_tree, pickle_path), (REPO, folder)):
        target = out / f"{name}-{tree.name}-documents.csv"
        target.unlink(missing_ok=True)
        _stance(
            tree,
            [
                "predict", str(model), str(documents), "--documents",
                "--target", "Iran's missile strikes", "-o", str(target), "--no-progress",
            ],
        )  # fmt: skip
        written.append(target.read_bytes())
    return written[0] == written[1]


def throughput(
    name: str, pickle_path: Path, folder: Path, old_tree: Path, out: Path, rows: int, repeats: int
) -> dict:
    """Median rows/s of ``stance predict --jobs 2``: the old tree with the pickle, this tree with
    the folder, alternating."""
    from speed_tiers import distinct_rows

    source = out / f"distinct_{rows}.csv"
    if not source.exists():
        data_dir = Path(os.environ.get("STANCE_DATA_DIR", REPO / "data"))
        arguments = pd.read_csv(
            data_dir / "ibm-argq-30k" / "arg_quality_rank_30k.csv", usecols=["argument", "topic"]
        )
        distinct_rows(arguments["argument"].tolist(), arguments["topic"].tolist(), rows).to_csv(
            source, index=False
        )
    seconds: dict[str, list[float]] = {"pickle": [], "folder": []}
    for _ in range(repeats):
        for kind, tree, model in (("pickle", old_tree, pickle_path), ("folder", REPO, folder)):
            target = out / f"{name}-{kind}-predictions.csv"
            target.unlink(missing_ok=True)
            seconds[kind].append(
                _stance(
                    tree,
                    [
                        "predict",
                        str(model),
                        str(source),
                        "-o",
                        str(target),
                        "--jobs",
                        "2",
                        "--no-progress",
                        "--text-column",
                        "text",
                        "--target-column",
                        "target",
                    ],
                )  # fmt: skip
            )
    return {
        "model": name,
        "rows": rows,
        "pickle_rows_per_s": rows / statistics.median(seconds["pickle"]),
        "folder_rows_per_s": rows / statistics.median(seconds["folder"]),
        "same_output": (out / f"{name}-pickle-predictions.csv").read_bytes()
        == (out / f"{name}-folder-predictions.csv").read_bytes(),
    }


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
    result = {
        "model": name,
        "pickle_load_s": statistics.median(pickle_s),
        "folder_load_s": statistics.median(folder_s),
        "pickle_mb": _size(pickle_path) / 1e6,
        "folder_mb": _size(folder) / 1e6,
        "rows": 0,
        "identical": None,
    }
    if rows:  # not --loads-only
        frame = _rows(old, rows)
        result["rows"] = len(frame)
        new = StanceModel.load(folder)
        result["identical"] = bool(old.predict(frame).equals(new.predict(frame)))
    return result


def _named_pickles(pairs: list[str]) -> dict[str, Path]:
    named = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--pickle takes NAME=PATH to an existing file, got {pair!r}")
        named[name] = Path(path)
    return named


def _store_pickles(store: str) -> dict[str, tuple[Path, bool]]:
    """Each run's pickle in the store, by experiment, and whether its model runs the encoder."""
    import mlflow

    mlflow.set_tracking_uri(store)
    found = {}
    for run in mlflow.search_runs(search_all_experiments=True, output_format="list"):
        logged = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
            output_format="list",
        )
        if not logged:
            continue
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{logged[0].model_id}"))
        pickle_path = local / "artifacts" / "model.pkl"
        if pickle_path.is_file():
            name = run.data.tags.get("stance.experiment") or run.info.run_name
            if "stance.cascade_fast" in run.data.tags:
                name += " cascade"
            if name in found:  # two runs of one experiment
                name += f" {run.info.run_id[:8]}"
            uses_encoder = any(key.startswith("features.embeddings") for key in run.data.params)
            found[name] = (pickle_path, uses_encoder)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--pickle", nargs="*", default=[], metavar="NAME=PATH")
    parser.add_argument("--old-checkout", type=Path)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--encoder-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--throughput", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--throughput-rows", type=int, default=200_000)
    parser.add_argument("--throughput-repeats", type=int, default=3)
    parser.add_argument(
        "--loads-only",
        action="store_true",
        help="time loads and sizes only (seconds, where predictions take half an hour)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = REPO / "benchmarks" / "out" / "model_format"
    out.mkdir(parents=True, exist_ok=True)
    pickles = _store_pickles(args.store) | {
        name: (path, False) for name, path in _named_pickles(args.pickle).items()
    }
    results, speeds = [], []
    for name, (pickle_path, uses_encoder) in pickles.items():
        rows = args.encoder_rows if uses_encoder else args.rows
        result = measure(name, pickle_path, out, 0 if args.loads_only else rows, args.repeats)
        if args.old_checkout and not args.loads_only:
            result["documents_identical"] = same_documents(
                name, pickle_path, out / name, args.old_checkout.resolve(), out
            )
        results.append(result)
        print(json.dumps(result), flush=True)
    for name in [] if args.loads_only else args.throughput:
        pickle_path = pickles[name][0]
        speeds.append(
            throughput(
                name,
                pickle_path,
                out / name,
                args.old_checkout.resolve(),
                out,
                args.throughput_rows,
                args.throughput_repeats,
            )  # fmt: skip
        )
        print(json.dumps(speeds[-1]), flush=True)
    print(
        "| model | pickle load (s) | folder load (s) | ratio | pickle MB | folder MB | ratio | "
        "rows compared | identical | documents identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in results:
        documents = {True: "yes", False: "NO", None: "not run"}[r.get("documents_identical")]
        print(
            f"| {r['model']} | {r['pickle_load_s']:.3f} | {r['folder_load_s']:.3f} | "
            f"{r['folder_load_s'] / r['pickle_load_s']:.2f}x | {r['pickle_mb']:.2f} | "
            f"{r['folder_mb']:.2f} | {r['folder_mb'] / r['pickle_mb']:.2f}x | {r['rows']:,} | "
            f"{ {True: 'yes', False: 'NO', None: 'not run'}[r['identical']] } | {documents} |"
        )
    if speeds:
        print("\n| model | rows | pickle rows/s | folder rows/s | ratio | same output |")
        print("|---|---:|---:|---:|---:|---|")
        for r in speeds:
            print(
                f"| {r['model']} | {r['rows']:,} | {r['pickle_rows_per_s']:,.0f} | "
                f"{r['folder_rows_per_s']:,.0f} | "
                f"{r['folder_rows_per_s'] / r['pickle_rows_per_s']:.2f}x | "
                f"{'yes' if r['same_output'] else 'NO'} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"models": results, "throughput": speeds}, indent=2))


if __name__ == "__main__":
    main()
