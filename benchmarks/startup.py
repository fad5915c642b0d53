"""How long `stance` takes to report a common mistake, and to train the sample: this tree
against an earlier one, in one invocation.

Run on demand, not in the test suite:

    python3 -m uv run --frozen --all-extras python benchmarks/startup.py --old-checkout OLD_TREE \
        [--accurate-model FOLDER --accurate-rows CSV]

``OLD_TREE`` is a ``git worktree`` of the earlier commit. Each case runs as a fresh
``python -m train.cli ...`` process from a scratch folder, with ``PYTHONPATH`` naming the tree,
alternating old and new, ``--repeats`` times; the table gives the median wall seconds of each
and their ratio. The mistakes are those of tests/train/test_startup.py.

``--jobs-scaling --accurate-model FOLDER --accurate-rows CSV`` times this tree alone: the whole
command with ``--jobs 1`` and ``--jobs 2``, alternating, and compares their outputs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _accurate_cases(scratch: Path, model: Path, rows: Path) -> dict[str, list[str]]:
    """A model with a sentence encoder: what one row costs (start-up, model and graph load), from
    its folder and from the run the scratch store logged it in, and a file of ``rows`` with one
    and two jobs."""
    (scratch / "one.csv").write_text("text,target\nThe strikes were lawful.,Iran\n")
    run_uri = _logged(model, scratch)
    return {
        "predict one row, accurate model": [
            "predict", str(model), str(scratch / "one.csv"), "-o", str(scratch / "a1.csv"),
        ],
        "predict one row, accurate model from runs:/": [
            "predict", run_uri, str(scratch / "one.csv"), "-o", str(scratch / "a1.csv"),
        ],
        **{
            f"predict {rows.name}, accurate model, --jobs {jobs}": [
                "predict", str(model), str(rows), "-o", str(scratch / f"a{jobs}.csv"),
                "--jobs", str(jobs), "--no-progress",
            ]
            for jobs in (1, 2)
        },
    }  # fmt: skip


def _logged(model: Path, scratch: Path) -> str:
    """Log the model folder in the scratch store (as ``stance train`` would) by this tree's code;
    returns its ``runs:/`` URI, which both trees then read."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
    sys.path.insert(0, str(REPO))
    import pandas as pd  # noqa: PLC0415 (the mistakes' timings need none of these loaded)

    from train import tracking  # noqa: PLC0415
    from train.models import StanceModel  # noqa: PLC0415

    loaded = StanceModel.load(model)
    with tracking.start_run("startup-benchmark", {}) as run_id:
        tracking.log_model(loaded, pd.DataFrame({"text": ["A reply."], "target": ["Iran"]}))
    return f"runs:/{run_id}/model"


def _cases(scratch: Path, model: Path) -> dict[str, list[str]]:
    sample = REPO / "experiments" / "sample.toml"
    data = REPO / "data"
    (scratch / "typo.toml").write_text(sample.read_text() + "\n[features.wrod]\nmin_df = 2\n")
    (scratch / "sample").mkdir(exist_ok=True)
    (scratch / "sample" / "sentences.csv").write_text(
        "id,sentense,target,stance,confidence\n1,The strikes were lawful.,Iran,FAVOR,1.0\n"
    )
    (scratch / "no_text.csv").write_text("id,sentence\n1,The strikes were lawful.\n")
    return {
        "train nope.toml": ["train", str(scratch / "nope.toml")],
        "train, a step name misspelt": [
            "train", str(scratch / "typo.toml"), "--data-dir", str(data),
        ],
        "train, the text column missing": ["train", str(sample), "--data-dir", str(scratch)],
        "predict, the input missing": [
            "predict", str(model), str(scratch / "nope.csv"), "-o", str(scratch / "o.csv"),
        ],
        "predict, the text column missing": [
            "predict", str(model), str(scratch / "no_text.csv"), "-o", str(scratch / "o.csv"),
        ],
        "train the sample (whole command)": [
            "train", str(sample), "--data-dir", str(data),
        ],
    }  # fmt: skip


# What any training pays before its first row: the modules `stance train` imports (scikit-learn,
# pandas, MLflow's SQL store and pyfunc, matplotlib), and MLflow's scan of the installed
# packages, which `mlflow.pyfunc.log_model` runs for every model it logs and no option skips.
FLOOR = {
    "python itself": "pass",
    "the imports of a training (no work)": (
        "import train.training, train.tracking, matplotlib.pyplot, mlflow.pyfunc, "
        "mlflow.store.tracking.sqlalchemy_store"
    ),
    "MLflow's installed-package scan in log_model": (
        "import time, importlib_metadata; t = time.perf_counter(); "
        "importlib_metadata.packages_distributions(); "
        "print(time.perf_counter() - t)"
    ),
}


def _seconds(tree: Path, args: list[str], scratch: Path, must_succeed: bool) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "train.cli", *args],
        cwd=scratch,
        env=env,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    if must_succeed and done.returncode != 0:
        sys.exit(f"{tree}: stance {' '.join(args)} failed:\n{done.stderr.decode()[-2000:]}")
    return seconds


def _floor(repeats: int) -> None:
    """Seconds of each ``FLOOR`` line in a fresh process of this tree (the scan: in-process)."""
    print("\n| floor of this tree | seconds |")
    print("|---|---:|")
    for name, code in FLOOR.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", code],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            whole = time.perf_counter() - started
            times.append(float(done.stdout) if done.stdout.strip() else whole)
        print(f"| {name} | {statistics.median(times):.2f} |", flush=True)


def _jobs_scaling(model: Path, rows: Path, repeats: int) -> None:
    """``--jobs 1`` against ``--jobs 2`` on ``rows``, whole commands of this tree: one untimed
    run first (page cache, the encoder graph's cache), then the two alternating, in turns
    that swap which goes first (so a slow spell of a shared machine falls on both), each pair's
    outputs compared byte for byte."""
    model, rows = model.resolve(), rows.resolve()  # the commands run in a scratch folder
    with tempfile.TemporaryDirectory(prefix="stance-jobs-") as folder:
        scratch = Path(folder)

        def seconds(jobs: int) -> float:
            output = scratch / f"a{jobs}.csv"
            output.unlink(missing_ok=True)
            argv = ["predict", str(model), str(rows), "-o", str(output)]
            return _seconds(REPO, [*argv, "--jobs", str(jobs), "--no-progress"], scratch, True)

        seconds(1)
        times, same = {1: [], 2: []}, []
        for turn in range(repeats):
            for jobs in (1, 2) if turn % 2 == 0 else (2, 1):
                times[jobs].append(seconds(jobs))
            same.append((scratch / "a1.csv").read_bytes() == (scratch / "a2.csv").read_bytes())
    one, two = statistics.median(times[1]), statistics.median(times[2])
    pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(times[1], times[2], strict=True))
    print(
        f"{rows.name}: --jobs 1 {one:.2f} s, --jobs 2 {two:.2f} s (medians of {repeats}): "
        f"{one / two:.2f}x; each pair {pairs}; outputs identical in every pair: {all(same)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-checkout", type=Path, help="the tree to compare with")
    parser.add_argument("--model", type=Path, help="a model folder both trees load")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--accurate-model", type=Path, help="a model folder with a sentence encoder"
    )
    parser.add_argument(
        "--accurate-rows", type=Path, help="a file of distinct rows (text, target) for it"
    )
    parser.add_argument(
        "--floor", action="store_true", help="also time what every training pays before work"
    )
    parser.add_argument(
        "--jobs-scaling",
        action="store_true",
        help="only --jobs 1 against --jobs 2 on --accurate-rows, this tree alone",
    )
    args = parser.parse_args()
    if bool(args.accurate_model) != bool(args.accurate_rows):
        parser.error("--accurate-model and --accurate-rows go together")
    if args.jobs_scaling:
        if not args.accurate_model:
            parser.error("--jobs-scaling needs --accurate-model and --accurate-rows")
        if args.old_checkout or args.model or args.floor:
            parser.error(
                "--jobs-scaling times this tree alone: drop --old-checkout, --model, --floor"
            )
        _jobs_scaling(args.accurate_model, args.accurate_rows, args.repeats)
        return
    if not args.old_checkout:
        parser.error("--old-checkout is needed, except with --jobs-scaling")
    with tempfile.TemporaryDirectory(prefix="stance-startup-") as folder:
        scratch = Path(folder)
        model = args.model or scratch / "no-model-needed"
        rows = []
        cases = _cases(scratch, model)
        accurate = {}
        if args.accurate_model:
            accurate = _accurate_cases(scratch, args.accurate_model, args.accurate_rows)
            cases |= accurate
        for name, argv in cases.items():
            times = {"old": [], "new": []}
            for _ in range(args.repeats):
                for which, tree in (("old", args.old_checkout.resolve()), ("new", REPO)):
                    for output in scratch.glob("a*.csv"):  # predict refuses to overwrite
                        output.unlink()
                    times[which].append(_seconds(tree, argv, scratch, name in accurate))
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            rows.append((name, old, new))
            print(f"{name}: {old:.2f} s -> {new:.2f} s", flush=True)
    print("\n| case | before (s) | now (s) | ratio |")
    print("|---|---:|---:|---:|")
    for name, old, new in rows:
        print(f"| {name} | {old:.2f} | {new:.2f} | {new / old:.2f}x |")
    if args.floor:
        _floor(args.repeats)


if __name__ == "__main__":
    main()
