"""Prediction speed of the accurate and the fast experiment of each dataset, side by side.

For each ``--model NAME=URI`` (a model file, ``runs:/RUN/model`` or ``models:/...``):

1. ``stance predict URI INPUT -o OUT --jobs J --no-progress``, the whole command (start-up and
   model load included), timed ``--repeats`` times, alternating between the models so that a
   noisy moment of the machine hits both; the median wall time gives rows/s, and the peak RSS
   is that of the process and its workers (psutil, sampled every 20 ms).
2. The input is built from the dataset named by NAME's prefix (semeval2016, fnc1, argq), rows of
   distinct texts: SemEval tweets and ArgQ arguments each joined with the first words of
   another (none repeated); FNC-1's competition test pairs as they are (bodies repeat across
   headlines, by the dataset's design), followed, beyond its 25,413 pairs, by pairs of its
   headlines with other bodies of the test set (no pair repeated).

    STANCE_DATA_DIR=../shared/data python3 -m uv run --frozen --all-extras \
        python benchmarks/speed_tiers.py --rows 200000 --accurate-rows 3000 \
        --model semeval2016=runs:/RUN/model --model semeval2016-fast=runs:/RUN/model ...

``--code NAME=FOLDER`` runs one model with the code of another checkout (``git worktree add``), so
that the speed of two commits compares in one invocation. A model whose NAME lacks ``-fast`` is
predicted on ``--accurate-rows`` rows (the encoder runs at a few hundred rows/s); NAME's first
word picks the data (``semeval2016-numpy`` reads SemEval).
Chunks are sized so that each worker gets at least four. Results: markdown on stdout, JSON in
benchmarks/out/speed_tiers.json.
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
import psutil

from train.data import SEMEVAL_TARGETS

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def data_root() -> Path:
    return Path(os.environ.get("STANCE_DATA_DIR", "data"))


def distinct_rows(texts: list[str], targets: list[str], n: int) -> pd.DataFrame:
    """``n`` rows of distinct texts: each text joined with the first words of another."""
    rows, seen, i = [], set(), 0
    while len(rows) < n:
        first = texts[i % len(texts)]
        # The partner also moves with each pass over the texts, so no pair repeats.
        other = texts[(i * 7919 + (i // len(texts)) * 104729 + 13) % len(texts)]
        text = f"{first} {' '.join(other.split()[:8])}"
        if text not in seen:
            seen.add(text)
            rows.append((str(i), text, targets[i % len(texts)]))
        i += 1
    return pd.DataFrame(rows, columns=["id", "text", "target"])


def _more_pairs(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` headline-body pairs that are not among ``pairs`` nor repeat: each headline of the
    test set with other bodies of it. A body recurs about as often per chunk as in the test set
    (its 904 bodies each serve about 28 headlines)."""
    headlines = pairs["Headline"].unique().tolist()
    bodies = pairs["articleBody"].unique().tolist()
    seen = set(zip(pairs["Headline"], pairs["articleBody"]))
    rows, i = [], 0
    while len(rows) < n:
        # Pass k over the headlines moves every headline's body on by one: all pairs, in time.
        body = ((i % len(headlines)) * 7919 + i // len(headlines)) % len(bodies)
        pair = (headlines[i % len(headlines)], bodies[body])
        if pair not in seen:
            seen.add(pair)
            rows.append(pair)
        i += 1
    return pd.DataFrame(rows, columns=["Headline", "articleBody"])


def build_input(dataset: str, n: int) -> Path:
    path = OUT / f"tiers_{dataset}_{n}.csv"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    root = data_root()
    if dataset == "argq":
        frame = pd.read_csv(root / "ibm-argq-30k" / "arg_quality_rank_30k.csv")
        table = distinct_rows(frame["argument"].tolist(), frame["topic"].tolist(), n)
    elif dataset == "semeval2016":
        texts, targets = [], []
        for folder in sorted((root / "semeval2016-tweeteval").iterdir()):
            if not folder.is_dir():
                continue
            for split in ("train", "val", "test"):
                source = folder / f"{split}_text.txt"
                if source.exists():
                    lines = source.read_text(encoding="utf-8").splitlines()
                    texts += lines
                    targets += [SEMEVAL_TARGETS.get(folder.name, folder.name)] * len(lines)
        table = distinct_rows(texts, targets, n)
    elif dataset == "fnc1":
        stances = pd.read_csv(root / "fnc1" / "competition_test_stances.csv")
        bodies = pd.read_csv(root / "fnc1" / "competition_test_bodies.csv")
        pairs = stances.merge(bodies, on="Body ID")[["Headline", "articleBody"]]
        if n > len(pairs):
            pairs = pd.concat([pairs, _more_pairs(pairs, n - len(pairs))], ignore_index=True)
        table = pd.DataFrame(
            {
                "id": [str(i) for i in range(len(pairs))],
                "text": pairs["articleBody"],
                "target": pairs["Headline"],
            }
        ).head(n)
    else:
        raise SystemExit(f"unknown dataset {dataset!r}; expected semeval2016, fnc1 or argq")
    table.to_csv(path, index=False)
    return path


def timed(command: list[str], cwd: Path = REPO) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) summed over the process and its children."""
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


def save_timings(name: str, model: str, rows: int, timings: dict, **more) -> None:
    """A benchmark's timings (``{route: [(seconds, peak RSS MiB), ...]}``) as
    benchmarks/out/NAME.json."""
    record = {
        "model": model,
        "rows": rows,
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "seconds": {route: [s for s, _ in runs] for route, runs in timings.items()},
    }
    (OUT / f"{name}.json").write_text(json.dumps(record | more, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=URI")
    parser.add_argument("--rows", type=int, default=200_000, help="rows for the fast models")
    parser.add_argument("--accurate-rows", type=int, default=3_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="run model NAME with the code of FOLDER (a checkout of another commit, e.g. from "
        "`git worktree add`), so that two commits compare in one invocation",
    )
    args = parser.parse_args()
    models = dict(entry.split("=", 1) for entry in args.model)
    code = {name: Path(folder).resolve() for name, folder in (e.split("=", 1) for e in args.code)}
    inputs = {}
    for name in models:
        dataset = name.split("-")[0]
        rows = args.rows if "-fast" in name else args.accurate_rows
        inputs[name] = build_input(dataset, rows)
    rows_of = {name: len(pd.read_csv(path, usecols=["id"])) for name, path in inputs.items()}
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, uri in models.items():
            output = OUT / f"tiers_{name}.csv"
            command = [sys.executable, "-m", "train.cli", "predict", uri, str(inputs[name])]
            command += ["-o", str(output), "--jobs", str(args.jobs), "--no-progress"]
            # Chunks small enough that every worker gets several, however few the rows.
            rows = rows_of[name]
            command += ["--chunk-size", str(min(10_000, max(500, rows // (4 * args.jobs))))]
            timings[name].append(timed(command, code.get(name, REPO)))
    results = []
    for name, runs in timings.items():
        rows = rows_of[name]
        seconds = statistics.median(s for s, _ in runs)
        results.append(
            {
                "model": name,
                "uri": models[name],
                "code": str(code.get(name, REPO)),
                "rows": rows,
                "jobs": args.jobs,
                "seconds": round(seconds, 1),
                "rows_per_s": round(rows / seconds),
                "peak_rss_mib": round(max(r for _, r in runs)),
                "runs": [round(s, 2) for s, _ in runs],
            }
        )
    (OUT / "speed_tiers.json").write_text(json.dumps(results, indent=2))
    print("| model | rows | jobs | rows/s (median) | seconds | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['model']} | {r['rows']:,} | {r['jobs']} | {r['rows_per_s']:,} | "
            f"{r['seconds']} | {r['peak_rss_mib']:,} |"
        )


if __name__ == "__main__":
    main()
