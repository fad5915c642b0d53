"""A team's shared store, for real: PostgreSQL started by the test run, an `mlflow server` in
front of it with artifacts proxied, and `stance` commands run through it; two `stance search`
processes sharing one Optuna study on PostgreSQL."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import assert_distinct_trials_that_rerun_exactly
from tests.servers import missing_postgres, mlflow_server, postgres
from train.config import Config

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "experiments" / "sample.toml")
DATA = str(REPO / "data")
FAST = ["--set", "features.char=false", "--set", "features.sentiment=false"]


@pytest.fixture(scope="session")
def databases():
    """A PostgreSQL cluster for this test run, with a database for MLflow and one for Optuna.
    CI installs PostgreSQL (.ci/run), so there a missing one fails rather than skips."""
    problem = missing_postgres()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        problem = problem or "psycopg is missing (python3 -m uv sync --frozen --all-extras)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    with postgres(("mlflow", "optuna")) as urls:
        yield urls


@pytest.fixture(scope="session")
def server(databases, tmp_path_factory) -> str:
    """`mlflow server` over the PostgreSQL store, artifacts proxied into a folder of its own."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(databases["mlflow"], folder) as (uri, _):
        yield uri


@pytest.fixture
def served(server, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.chdir(tmp_path)
    return server


def run_id(stdout: str) -> str:
    found = re.search(r"run_id: (\w+)", stdout)
    assert found, stdout
    return found.group(1)


def test_runs_through_the_server_log_everything_and_every_command_reads_them(
    served, run_cli, tmp_path
):
    from mlflow import MlflowClient

    code, out, err = run_cli("train", SAMPLE, "--data-dir", DATA, *FAST)
    assert code == 0, err
    first = run_id(out)
    code, out, err = run_cli("train", SAMPLE, "--data-dir", DATA, *FAST, "--set", "clf__C=0.1")
    assert code == 0, err
    second = run_id(out)

    client = MlflowClient(served)
    run = client.get_run(first)
    assert run.data.params["seed"] and run.data.params["model.clf.C"] == "10.0"
    assert any(name.startswith("test_") for name in run.data.metrics)
    # Artifacts went through the server to its own folder, not to a path of this client's.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    logged = {artifact.path for artifact in client.list_artifacts(first)}
    assert {"config.toml", "report"} <= logged, logged

    sentences = tmp_path / "in.csv"
    pd.DataFrame(
        {"text": ["Remote work gives parents their mornings back."], "target": ["remote work"]}
    ).to_csv(sentences, index=False)
    code, _, err = run_cli("predict", f"runs:/{first}/model", sentences, "-o", tmp_path / "o.csv")
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "o.csv")) == 1

    code, out, err = run_cli("runs")
    assert code == 0, err
    assert first[:8] in out and second[:8] in out
    code, out, err = run_cli("show", first[:8])
    assert code == 0, err
    assert first in out
    code, out, err = run_cli("compare", first[:8], second[:8])
    assert code == 0, err
    assert "model.clf.C" in out
    code, out, err = run_cli("reproduce", first[:8], "--data-dir", DATA)
    assert code == 0, err
    assert "identical metrics" in out


def _train_sample(run_cli, overrides: list[str]) -> float:
    from mlflow.tracking import MlflowClient

    code, out, err = run_cli("train", SAMPLE, "--data-dir", DATA, *FAST, *overrides)
    assert code == 0, err
    return MlflowClient().get_run(run_id(out)).data.metrics["valid_macro_f1"]


def test_two_searches_share_one_study_on_postgres(
    served, databases, search_command, tmp_path, run_cli
):
    storage = databases["optuna"]
    command = search_command(storage, "team")
    processes = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-2000:]

    import optuna

    study = optuna.load_study(study_name="team", storage=storage)
    assert sorted(t.number for t in study.trials) == list(range(4))  # none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert_distinct_trials_that_rerun_exactly(
        study, Config.from_toml(SAMPLE).seed, functools.partial(_train_sample, run_cli)
    )
    bests = [re.search(r"^best: .*$", out, re.MULTILINE).group(0) for out, _ in outputs]
    assert bests[0] == bests[1]
    assert f"{study.best_value:.4f}" in bests[0]
