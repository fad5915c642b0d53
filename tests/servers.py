"""Real servers for the tests and benchmarks: a PostgreSQL cluster and an ``mlflow server`` in
front of it (the shared store), and a standalone Spark cluster (the cluster route), all on
127.0.0.1, started here and stopped at the end.

PostgreSQL comes from Debian's packages (``apt-get install postgresql``; .ci/run installs it),
found on PATH or under /usr/lib/postgresql/*/bin. PostgreSQL refuses to run as root, so as
root the cluster runs as the ``postgres`` user those packages create.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

INSTALL_POSTGRES = "apt-get install postgresql"
USER = "stance"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin(program: str) -> str | None:
    found = shutil.which(program)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
    return candidates[-1] if candidates else None


def missing_postgres() -> str | None:
    """Why a cluster cannot be started here, or None."""
    for program in ("initdb", "pg_ctl"):
        if postgres_bin(program) is None:
            return f"PostgreSQL's {program} is not installed ({INSTALL_POSTGRES})"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return (
            "running as root, and runuser (util-linux) is missing to start PostgreSQL as postgres"
        )
    return None


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres(databases: tuple[str, ...] = ("mlflow",)):
    """A throwaway PostgreSQL cluster; yields ``{name: "postgresql://..."}`` for ``databases``
    and for ``postgres``, the database every cluster starts with.

    fsync is off: the cluster lives for one test run, and durability costs seconds per commit.
    """
    import psycopg

    folder = Path(tempfile.mkdtemp(prefix="stance-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    pg_ctl = postgres_bin("pg_ctl")
    subprocess.run(
        _as_owner(
            [postgres_bin("initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8"]
            + ["--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-h 127.0.0.1 -p {port} -k {data} -F"
    subprocess.run(
        _as_owner([pg_ctl, "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        admin = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            for name in databases:
                connection.execute(f'CREATE DATABASE "{name}"')
        yield {
            name: f"postgresql://{USER}@127.0.0.1:{port}/{name}"
            for name in ("postgres", *databases)
        }
    finally:
        subprocess.run(
            _as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(url: str, process: subprocess.Popen, timeout_s: float, log: Path) -> float:
    """Seconds until ``url`` answers 200; fails with the server's log if it dies or times out."""
    import requests

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


@contextmanager
def mlflow_server(
    backend_uri: str,
    folder: Path,
    jobs: bool = False,
    workers: int = 2,
    wait: bool = True,
    start_timeout_s: float = 240,
):
    """``mlflow server`` on 127.0.0.1 over ``backend_uri``, artifacts proxied into ``folder``;
    yields ``(tracking URI, seconds until it answered /health)``, or with ``wait=False``
    ``(tracking URI, None)`` as soon as it is started.

    The defaults start it as the README says to: 2 workers, and without MLflow's job runner,
    whose seven Python processes serve GenAI jobs that stance never submits
    (benchmarks/shared_store.py measures what each costs the first commands).
    """
    port = free_port()
    log = folder / "mlflow-server.log"
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION=str(jobs).lower()),
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        yield uri, wait_for(f"{uri}/health", process, start_timeout_s, log) if wait else None
    finally:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)


SPARK_STARTUP_S = 90
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def spark_cluster(folder: Path, workers: int = 2, memory: str = "1g", pin: bool = False):
    """A standalone Spark cluster started as docs/scale-out.md starts one, with PySpark's own
    ``sbin/spark-daemon.sh``: a master and ``workers`` one-core workers, each a process (and JVM)
    of its own; yields the master's URL. Logs and pid files go under ``folder``.

    ``pin``: worker n and all it starts (its executor's JVM, their Python workers) run on CPU n
    alone, so that a one-core worker is one core: unpinned, an executor's JVM threads (decoding
    Arrow, garbage collection) would run on the core its Python worker leaves free."""
    import pyspark

    daemon = Path(pyspark.__file__).parent / "sbin" / "spark-daemon.sh"
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(folder),
        "SPARK_PID_DIR": str(folder),
        "SPARK_IDENT_STRING": "stance",
    }
    port = free_port()
    master = f"spark://127.0.0.1:{port}"
    started: list[tuple[str, int]] = []

    def start(kind: str, number: int, ready: str, *arguments: str, cpu: int | None = None):
        launched = subprocess.run(
            ["bash", str(daemon), "start", kind, str(number), *arguments],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=None if cpu is None else functools.partial(os.sched_setaffinity, 0, {cpu}),
        )
        pid_file = folder / f"spark-stance-{kind}-{number}.pid"
        if launched.returncode != 0 or not pid_file.exists():
            raise RuntimeError(f"spark-daemon.sh start {kind}: {launched.stdout}{launched.stderr}")
        pid = int(pid_file.read_text())
        started.append((kind, number))
        [log] = folder.glob(f"spark-stance-{kind}-{number}-*.out")
        deadline = time.monotonic() + SPARK_STARTUP_S
        while ready not in log.read_text(errors="replace"):
            if not _alive(pid) or time.monotonic() > deadline:
                raise RuntimeError(f"{log.name} did not say {ready!r}:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)

    pids = []
    try:
        start(
            MASTER,
            1,
            "I have been elected leader",
            *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())),
        )
        for number in range(1, workers + 1):
            start(
                WORKER,
                number,
                "Successfully registered with master",
                master,
                *("--cores", "1", "--memory", memory, "--webui-port", str(free_port())),
                *("--work-dir", str(folder / f"worker-{number}")),
                cpu=(number - 1) % os.cpu_count() if pin else None,
            )
        yield master
    finally:
        for kind, number in reversed(started):
            pid_file = folder / f"spark-stance-{kind}-{number}.pid"
            if pid_file.exists():
                pids.append(int(pid_file.read_text()))
            subprocess.run(
                ["bash", str(daemon), "stop", kind, str(number)], env=env, capture_output=True
            )
        deadline = time.monotonic() + 20
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in filter(_alive, pids):
            os.kill(pid, signal.SIGKILL)
