"""`stance predict --engine spark` on a standalone Spark cluster: a master and two one-core
workers, separate processes on 127.0.0.1 started with PySpark's own spark-daemon.sh as
docs/scale-out.md starts them, and a driver in a process of its own. The executors run the
project from the same environment at the same path (the recipe in docs/scale-out.md), and the
model reaches them as files the driver hands out, checked against its fingerprint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.servers import WORKER, spark_cluster
from tests.train.test_spark import (
    DOCUMENTS,
    TARGET,
    assert_same_predictions,
    counts,
    spark_or_skip,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(master URL, folder of the daemons' logs and work)``; stopped after the module."""
    spark_or_skip()
    folder = tmp_path_factory.mktemp("cluster")
    try:
        with spark_cluster(folder, workers=2) as master:
            yield master, folder
    except RuntimeError as error:  # a daemon that did not start: its log says why
        pytest.fail(str(error))


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
        [log] = folder.glob(f"spark-stance-{WORKER}-{number}-*.out")
        assert "Asked to launch executor" in log.read_text()

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
