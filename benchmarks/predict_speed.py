"""Throughput and peak memory of `stance predict` (issue: batch prediction at scale).

Run on demand, not in the test suite:

    STANCE_DATA_DIR=../shared/data uv run python benchmarks/predict_speed.py

What it does, all in one run so that ratios compare like with like:

1. Builds CSV inputs of 100k and 1M rows of distinct texts (ArgQ arguments, each joined
   with the first words of another; the topic as target), and a folder of 10,000
   documents (the two articles in ../shared/documents, repeated).
2. Fits the models (without MLflow): a word 1-2-gram TF-IDF + linear SVM, and
   the configurations of experiments/ (semeval2016, fnc1, argq).
3. Measures the one-core vectorize-only floor: the word 1-2-gram model's
   feature step alone, over the same rows in 10k chunks, in memory.
4. Runs `stance predict` (CSV in, CSV with probabilities out) for every model,
   row count and --jobs, several times, and reports the median rows/s and the
   peak RSS of the whole process tree (sampled every 20 ms).
5. Runs `stance predict --documents` over the document folder.
6. With ``--explain K``, runs every model, row count and --jobs of step 4 twice
   over, without and with ``--explain K``, alternating, and reports the cost of
   the explanations as a ratio of the two medians.

Results go to stdout as markdown and to benchmarks/out/predict_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speed_tiers import distinct_rows  # noqa: E402

from train.config import Config  # noqa: E402
from train.data import load_dataset, split_dataset  # noqa: E402
from train.models import (  # noqa: E402
    StanceModel,
    build_model,
    fit_model,
    needs_target,
    runtime_versions,
)
from train.sources import data_root  # noqa: E402

OUT = REPO / "benchmarks" / "out"
MODELS = {
    # name: (experiment, overrides)
    # Every other step of the ArgQ experiment switched off, by name: the experiment gained
    # target_cues and embeddings after this model was first measured, and left on they
    # made it a different, 20 times slower model (caught by FEATURES_OF below).
    "word12_svm": (
        "argq",
        [
            "features.char=false",
            "features.relatedness=false",
            "features.sentiment=false",
            "features.style=false",
            "features.target_cues=false",
            "features.embeddings=false",
            "word__negation=false",
            "model.classifier=linear_svm",
            "model.clf={}",
        ],
    ),
    "semeval2016": ("semeval2016", []),
    "fnc1": ("fnc1", []),
    "argq": ("argq", []),
}
# The feature steps a model must have, where the experiment it borrows from may change.
FEATURES_OF = {"word12_svm": {"word"}}


def fit_and_save(name: str, experiment: str, overrides: list[str], root: Path) -> Path:
    path = OUT / "models" / f"{name}.pkl"
    if path.exists():
        return path
    config = Config.from_toml(REPO / "experiments" / f"{experiment}.toml", overrides)
    if name in FEATURES_OF and set(config.features) != FEATURES_OF[name]:
        raise SystemExit(
            f"{name} should have the feature steps {sorted(FEATURES_OF[name])}, but "
            f"experiments/{experiment}.toml with its "
            f"overrides gives {sorted(config.features)}; switch the others off in MODELS."
        )
    data = load_dataset(config.data, root)
    train = split_dataset(data.rows, config.split, config.seed)["train"]
    weights = train["weight"].to_numpy() if config.data.use_weights else None
    model = StanceModel(
        fit_model(build_model(config), train, weights),
        config.labels,
        config.to_dict(),
        needs_target(config),
        versions=runtime_versions(),
    )
    return model.save(path)


def build_inputs(root: Path, sizes: list[int]) -> dict[int, Path]:
    """ArgQ arguments, each joined with the first words of another, so that no text repeats:
    repeated texts would flatter every route that de-duplicates."""
    arguments = pd.read_csv(
        root / "ibm-argq-30k" / "arg_quality_rank_30k.csv", usecols=["argument", "topic"]
    )
    paths = {}
    for size in sizes:
        path = OUT / f"distinct_{size}.csv"
        if not path.exists():
            rows = distinct_rows(arguments["argument"].tolist(), arguments["topic"].tolist(), size)
            rows.to_csv(path, index=False)
        paths[size] = path
    return paths


def build_documents(count: int) -> Path:
    folder = OUT / f"documents_{count}"
    if not folder.exists():
        folder.mkdir(parents=True)
        sources = sorted((REPO.parent / "shared" / "documents").glob("*.txt"))
        texts = [p.read_text(encoding="utf-8") for p in sources]
        for i in range(count):
            (folder / f"doc{i:05d}.txt").write_text(texts[i % len(texts)], encoding="utf-8")
    return folder


def vectorize_floor(model_path: Path, source: Path, chunk: int = 10_000) -> float:
    """Rows/s of the word 1-2-gram feature step alone, one core, data already in memory."""
    features = StanceModel.load(model_path).estimator.named_steps["features"]
    frame = pd.read_csv(source, dtype=str)
    started = time.perf_counter()
    for start in range(0, len(frame), chunk):
        features.transform(frame.iloc[start : start + chunk][["text", "target"]])
    return len(frame) / (time.perf_counter() - started)


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) summed over the process and its children."""
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process] + process.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, peak / 2**20


def stance(*args: str) -> list[str]:
    return [sys.executable, "-m", "train.cli", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        help="rows for the word 1-2-gram model",
    )
    parser.add_argument(
        "--best-sizes",
        type=int,
        nargs="+",
        default=[50_000],
        help="rows for the experiments' configurations (their character n-grams and lexicon run "
        "at a few thousand rows/s)",
    )
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--document-repeats", type=int, default=1)
    parser.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="K",
        help="also time each run with --explain K (alternating with the plain runs)",
    )
    args = parser.parse_args()
    root = data_root()
    OUT.mkdir(parents=True, exist_ok=True)
    for parts in OUT.glob(
        "*.parts"
    ):  # left by an interrupted benchmark; `stance predict` would refuse to start over them
        shutil.rmtree(parts)

    models = {name: fit_and_save(name, *MODELS[name], root) for name in args.models}
    inputs = build_inputs(root, sorted(set(args.sizes) | set(args.best_sizes)))
    results = {"cpu_count": os.cpu_count(), "repeats": args.repeats, "runs": [], "floor": {}}
    for size, source in inputs.items():
        if size not in args.sizes:
            continue
        floors = [vectorize_floor(models["word12_svm"], source) for _ in range(args.repeats)]
        results["floor"][size] = statistics.median(floors)
        print(f"floor {size}: {results['floor'][size]:,.0f} rows/s", file=sys.stderr)
    for name, model in models.items():
        sizes = args.sizes if name == "word12_svm" else args.best_sizes
        for size, source in ((s, inputs[s]) for s in sizes):
            for jobs in args.jobs:
                command = stance(
                    "predict",
                    str(model),
                    str(source),
                    "-o",
                    str(OUT / "predictions.csv"),
                    "--jobs",
                    str(jobs),
                    "--no-progress",
                )
                variants = {0: command} | (
                    {args.explain: [*command, "--explain", str(args.explain)]}
                    if args.explain
                    else {}
                )
                samples = {explain: [] for explain in variants}
                for _ in range(
                    args.repeats
                ):  # alternating, so that drift in the machine's speed hits both alike
                    for explain, argv in variants.items():
                        samples[explain].append(timed(argv))
                floor = results["floor"].get(size)
                for explain, runs in samples.items():
                    seconds = statistics.median(s for s, _ in runs)
                    row = {
                        "model": name,
                        "rows": size,
                        "jobs": jobs,
                        "explain": explain,
                        "seconds": seconds,
                        "rows_per_s": size / seconds,
                        "peak_rss_mib": statistics.median(r for _, r in runs),
                        "vs_floor": size / seconds / floor if floor else None,
                    }
                    results["runs"].append(row)
                    print(json.dumps(row), file=sys.stderr)
    if args.documents:
        folder = build_documents(args.documents)
        sample = fit_and_save("sample", "sample", [], REPO / "data")
        for jobs in args.jobs:
            samples = []
            for _ in range(args.document_repeats):
                seconds, rss = timed(
                    stance(
                        "predict",
                        str(sample),
                        str(folder),
                        "--documents",
                        "--target",
                        "Iran's missile strikes",
                        "-o",
                        str(OUT / "documents.csv"),
                        "--jobs",
                        str(jobs),
                        "--no-progress",
                    )
                )
                samples.append((seconds, rss))
            sentences = int(
                (pd.read_csv(OUT / "documents.csv", usecols=["level"])["level"] == "sentence").sum()
            )
            seconds = statistics.median(s for s, _ in samples)
            results.setdefault("documents", []).append(
                {
                    "jobs": jobs,
                    "documents": args.documents,
                    "sentences": sentences,
                    "seconds": seconds,
                    "documents_per_s": args.documents / seconds,
                    "sentences_per_s": sentences / seconds,
                    "peak_rss_mib": statistics.median(r for _, r in samples),
                }
            )
    (OUT / "predict_speed.json").write_text(json.dumps(results, indent=2))
    print(report(results))


def report(results: dict) -> str:
    lines = [
        "| model | rows | jobs | explain | rows/s | x floor | x without explain | peak RSS MiB | "
        "seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    plain = {(r["model"], r["rows"], r["jobs"]): r for r in results["runs"] if not r.get("explain")}
    for r in results["runs"]:
        ratio = f"{r['vs_floor']:.2f}" if r["vs_floor"] else "-"
        base = plain.get((r["model"], r["rows"], r["jobs"]))
        cost = f"{r['rows_per_s'] / base['rows_per_s']:.2f}" if r.get("explain") and base else "-"
        lines.append(
            f"| {r['model']} | {r['rows']:,} | {r['jobs']} | {r.get('explain') or '-'} | "
            f"{r['rows_per_s']:,.0f} | {ratio} | {cost} | {r['peak_rss_mib']:,.0f} | "
            f"{r['seconds']:.1f} |"
        )
    lines.append("")
    lines += [
        f"One-core vectorize-only floor (word 1-2-gram feature step, in memory), {size:,} rows: "
        f"{rate:,.0f} rows/s"
        for size, rate in results["floor"].items()
    ]
    for d in results.get("documents", []):
        lines.append(
            f"Documents, jobs {d['jobs']}: {d['documents']:,} documents, {d['sentences']:,} "
            f"sentences in {d['seconds']:.1f}s: "
            f"{d['documents_per_s']:,.0f} documents/s, {d['sentences_per_s']:,.0f} sentences/s, "
            f"peak RSS {d['peak_rss_mib']:,.0f} MiB"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
