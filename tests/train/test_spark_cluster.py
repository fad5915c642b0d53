"""`stance predict --engine spark` on a standalone Spark cluster: a master and two one-core
workers, separate processes on 127.0.0.1 started from PySpark's own launcher, and a driver in a
process of its own. The executors run the project from the same environment at the same path
(the recipe in docs/scale-out.md), and the model reaches them as files the driver hands out,
checked against its fingerprint."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.train.test_spark import (
    DOCUMENTS,
    TARGET,
    assert_same_predictions,
    counts,
    spark_or_skip,
)

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 90


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(log: Path, text: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"{log.name}: the process ended ({process.returncode}):\n{log.read_text()}")
        time.sleep(0.3)
    pytest.fail(f"{log.name} did not say {text!r} within {STARTUP_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(master URL, folder of the daemons' logs and work)``; stopped after the module."""
    spark_or_skip()
    import pyspark

    launcher = Path(pyspark.__file__).parent / "bin" / "spark-class"
    folder = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(folder)}
    port = _free_port()
    master = f"spark://127.0.0.1:{port}"
    started = []

    def start(name: str, *arguments: str) -> subprocess.Popen:
        log = folder / f"{name}.log"
        process = subprocess.Popen(
            [str(launcher), *arguments],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its JVM with it, stopped as a group
        )
        started.append(process)
        return process

    try:
        process = start(
            "master",
            "org.apache.spark.deploy.master.Master",
            *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port())),
        )
        _wait_for(folder / "master.log", "I have been elected leader", process)
        for number in (1, 2):
            work = folder / f"worker-{number}"
            process = start(
                f"worker-{number}",
                "org.apache.spark.deploy.worker.Worker",
                master,
                *("--host", "127.0.0.1", "--cores", "1", "--memory", "1g"),
                *("--webui-port", str(_free_port()), "--work-dir", str(work)),
            )
            _wait_for(
                folder / f"worker-{number}.log", "Successfully registered with master", process
            )
        yield master, folder
    finally:
        for process in started:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


DRIVER = """
import sys
from train.predict import PredictOptions
from train.spark import predict_spark, session
from train.tables import ColumnNames

master, model, table, documents, out = sys.argv[1:]
# One application for both: its executors start once.
with session(master):
    predict_spark(model, table, out + "/sentences", PredictOptions(keep_text=True), master)
    options = PredictOptions(documents=True, target={target!r}, aggregate="framing")
    predict_spark(model, documents, out + "/documents", options, master)
"""


def test_the_cluster_predicts_what_the_local_route_does(
    cluster, run_cli, model_path, messy_csv, tmp_path
):
    master, folder = cluster
    if not DOCUMENTS.is_dir():
        pytest.fail(f"the two articles are missing from {DOCUMENTS}")
    corpus = tmp_path / "articles"
    shutil.copytree(DOCUMENTS, corpus / "iran")
    (corpus / "empty.txt").write_text("   \n")
    (corpus / "_draft.txt").write_text("Skipped by both routes.")
    out = tmp_path / "cluster"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        # The executors' Python: this environment, at the same path on every node.
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    driver = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER.format(target=TARGET),
            *(master, str(model_path), str(messy_csv), str(corpus), str(out)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    # Each worker ran an executor of this application, in a process of its own.
    for number in (1, 2):
        assert "Asked to launch executor" in (folder / f"worker-{number}.log").read_text()

    local = tmp_path / "local.parquet"
    code, _, local_err = run_cli("predict", model_path, messy_csv, "-o", local, "--keep-text")
    assert code == 0, local_err
    assert counts(driver.stderr) == counts(local_err)  # the first summary: the sentences
    assert_same_predictions(pd.read_parquet(out / "sentences"), pd.read_parquet(local))
    cluster_rejects = pd.read_parquet(out / "sentences.rejects")
    local_rejects = pd.read_csv(tmp_path / "local.rejects.csv", keep_default_na=False)
    assert cluster_rejects["line"].tolist() == local_rejects["line"].tolist()
    assert cluster_rejects["reason"].tolist() == local_rejects["reason"].tolist()

    local_docs = tmp_path / "local-docs.parquet"
    code, _, local_err = run_cli(
        "predict", model_path, corpus, "-o", local_docs, "--documents", "--target", TARGET,
        "--aggregate", "framing",
    )  # fmt: skip
    assert code == 0, local_err
    assert_same_predictions(pd.read_parquet(out / "documents"), pd.read_parquet(local_docs))
