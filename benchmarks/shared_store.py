"""The shared store's timings: a tracking server over PostgreSQL against a SQLite file.

Run on demand, not in the test suite (PostgreSQL from Debian's packages, as for the tests):

    python3 -m uv run --frozen --all-extras python benchmarks/shared_store.py

All in one run, on a throwaway PostgreSQL cluster (tests/servers.py):

1. First commands against a fresh server, as a user meets them: a new database, ``mlflow server``
   started, and as soon as its port accepts connections, ``stance runs`` three times in a row,
   each timed as a whole command, ``--repeats`` times for each setting: MLflow's defaults (4
   workers, its job runner on) and docs/scale-out.md's (2 workers,
   ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``), and each change alone.
2. ``stance train experiments/sample.toml`` through the server (job runner off) and with a SQLite
   file, alternating, ``--repeats`` times each; medians.

Results: markdown on stdout, JSON in benchmarks/out/shared_store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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
SETTINGS = [  # name, uvicorn workers, MLflow's job runner
    ("MLflow's defaults: 4 workers, job runner on", 4, True),
    ("4 workers, job runner off", 4, False),
    ("2 workers, job runner on", 2, True),
    ("docs/scale-out.md: 2 workers, job runner off", 2, False),
]


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


def wait_for_port(uri: str, timeout_s: float = 120) -> float:
    """The moment ``uri``'s port accepts a connection (perf_counter)."""
    host, port = uri.removeprefix("http://").split(":")
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return time.perf_counter()
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{uri} did not listen within {timeout_s} s")


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
        for name, workers, jobs in SETTINGS:
            rows = results["first_commands"][name] = []
            for repeat in range(args.repeats):
                backend = fresh_database(admin, f"mlflow_{workers}_{int(jobs)}_{repeat}")
                folder = work / f"server-{workers}-{int(jobs)}-{repeat}"
                launched = time.perf_counter()
                with mlflow_server(backend, folder, jobs, workers, wait=False) as (uri, _):
                    listening = wait_for_port(uri) - launched
                    commands = [timed(STANCE + ["runs"], uri, work) for _ in range(3)]
                rows.append({"listening_s": listening, "runs_s": commands})
                print(f"{name}: listening {listening:.1f} s, runs {commands}", file=sys.stderr)
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

    print("| server | port open after s | 1st `stance runs` s | 2nd | 3rd |")
    print("|---|---:|---:|---:|---:|")
    for setting, rows in results["first_commands"].items():
        cells = [statistics.median(row["listening_s"] for row in rows)]
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
