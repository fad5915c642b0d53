"""The shared store's timings: a tracking server over PostgreSQL against a SQLite file.

Run on demand, not in the test suite (PostgreSQL from Debian's packages, as for the tests):

    python3 -m uv run --frozen --all-extras python benchmarks/shared_store.py

All in one run, on a throwaway PostgreSQL cluster (tests/servers.py):

1. First commands against a fresh server: for each setting of MLflow's job runner (on, as
   ``mlflow server`` starts by default; off, ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``, as the
   README says), ``--repeats`` times: a new database, a new server, the seconds until it answers
   /health, then ``stance runs`` three times in a row, each timed as a whole command.
2. ``stance train experiments/sample.toml`` through the server (job runner off) and with a SQLite
   file, alternating, ``--repeats`` times each; medians.

Results: markdown on stdout, JSON in benchmarks/out/shared_store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import mlflow_server, postgres  # noqa: E402

OUT = REPO / "benchmarks" / "out"
STANCE = [sys.executable, "-m", "train.cli"]


def timed(command: list[str], tracking_uri: str, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=cwd,
        env=dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def fresh_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict = {"first_commands": {}, "train": {"server": [], "sqlite": []}}
    with postgres(()) as urls, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        admin = urls["postgres"]
        for jobs in (True, False):
            rows = results["first_commands"][f"jobs {'on' if jobs else 'off'}"] = []
            for repeat in range(args.repeats):
                backend = fresh_database(admin, f"mlflow_{int(jobs)}_{repeat}")
                folder = work / f"server-{int(jobs)}-{repeat}"
                with mlflow_server(backend, folder, jobs=jobs) as (uri, started_s):
                    commands = [timed(STANCE + ["runs"], uri, work) for _ in range(3)]
                rows.append({"server_start_s": started_s, "runs_s": commands})
                print(f"jobs {jobs}: {started_s:.1f} s to start, runs {commands}", file=sys.stderr)
        backend = fresh_database(admin, "mlflow_train")
        with mlflow_server(backend, work / "server-train") as (uri, _):
            sqlite = f"sqlite:///{work / 'mlflow.db'}"
            timed(STANCE + ["runs"], uri, work)  # the first command is measured above
            timed(STANCE + ["runs"], sqlite, work)  # and the SQLite file created once
            train = STANCE + ["train", str(REPO / "experiments" / "sample.toml")]
            train += ["--data-dir", str(REPO / "data")]
            for _ in range(args.repeats):
                for name, store in (("server", uri), ("sqlite", sqlite)):
                    results["train"][name].append(timed(train, store, work))
                    print(f"train via {name}: {results['train'][name][-1]:.1f} s", file=sys.stderr)

    print("| job runner | server start s | 1st `stance runs` s | 2nd | 3rd |")
    print("|---|---:|---:|---:|---:|")
    for setting, rows in results["first_commands"].items():
        cells = [statistics.median(row["server_start_s"] for row in rows)]
        cells += [statistics.median(row["runs_s"][i] for row in rows) for i in range(3)]
        print(f"| {setting} | " + " | ".join(f"{cell:.1f}" for cell in cells) + " |")
    server = statistics.median(results["train"]["server"])
    sqlite = statistics.median(results["train"]["sqlite"])
    print("\n| `stance train experiments/sample.toml` | median s | vs SQLite |\n|---|---:|---:|")
    print(f"| through the server (PostgreSQL) | {server:.1f} | {server / sqlite:.2f}x |")
    print(f"| SQLite file | {sqlite:.1f} | 1.00x |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "shared_store.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
