"""Faults a user's environment throws at the tool: one line, a status code, nothing lost, nothing
left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "experiments" / "sample.toml")
DATA = str(REPO / "data")
FAST = ["--set", "features.char=false", "--set", "features.sentiment=false"]


def stance_command(*args) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from train.cli import main; sys.exit(main(sys.argv[1:]))",
        *map(str, args),
    ]


@pytest.fixture
def unwritable_folder(tmp_path) -> Path:
    """A folder no file can be created in. Root ignores permission bits, so as root it is /proc,
    which refuses new files to everyone; otherwise a folder of tmp_path without write bits."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(
        "id,text,target\n1,The strikes were lawful.,Iran's missile strikes\n2,,Iran's missile "
        "strikes\n"
    )
    return path


# --------------------------------------------------------------------------- the store


@pytest.mark.parametrize("command", [["runs"], ["train", SAMPLE, "--data-dir", DATA, *FAST]])
def test_an_unwritable_working_folder_is_reported_at_once(
    unwritable_folder, monkeypatch, run_cli, command
):
    # Before: MLflow retried opening ./mlflow.db for about 107 s, then a traceback with status 1.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(unwritable_folder)
    started = time.monotonic()
    code, _, err = run_cli(*command)
    assert time.monotonic() - started < 30
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "sqlite:///mlflow.db" in err and "MLFLOW_TRACKING_URI" in err and "Traceback" not in err


def _train_at_once(store: Path, cwd: Path, n: int) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    processes = [
        subprocess.Popen(
            stance_command("train", SAMPLE, "--data-dir", DATA, *FAST),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    return [(p, *p.communicate(timeout=600)) for p in processes]


def test_four_trainings_at_once_on_a_new_and_then_an_existing_store(tmp_path, monkeypatch, run_cli):
    # Before: on a new SQLite file every one failed in alembic's migrations, and one try left the
    # store unusable.
    import mlflow

    store = tmp_path / "mlflow.db"
    for _ in ("new", "existing"):
        for process, out, err in _train_at_once(store, tmp_path, 4):
            assert process.returncode == 0, err
            assert "run_id: " in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("sample").experiment_id])
    assert len(runs) == 8 and {run.info.status for run in runs} == {"FINISHED"}
    assert (
        len({run.data.metrics["test_macro_f1"] for run in runs}) == 1
    )  # same config and seed, same metrics
    code, out, _ = run_cli("runs", "sample")
    assert code == 0 and len(out.strip().splitlines()) == 9


def test_a_locked_store_is_retried_with_bounded_waits(monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    from train import tracking

    monkeypatch.setattr(tracking, "LOCKED_RETRY_WAITS_S", (0.01, 0.02, 0.04))
    attempts = []

    @tracking.retry_when_locked
    def log_something():
        attempts.append(1)
        if len(attempts) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return "logged"

    assert log_something() == "logged" and len(attempts) == 3
    assert capsys.readouterr().err.count("locked by another writer") == 2

    attempts.clear()

    @tracking.retry_when_locked
    def always_locked():
        attempts.append(1)
        raise MlflowException("database is locked")

    with pytest.raises(MlflowException):
        always_locked()
    assert len(attempts) == 4  # three waits, then the error goes to the caller

    @tracking.retry_when_locked
    def other_error():
        attempts.append(1)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST")

    attempts.clear()
    with pytest.raises(MlflowException):
        other_error()
    assert len(attempts) == 1


def test_a_server_that_went_away_is_given_up_within_a_minute_saying_what_is_retried(
    monkeypatch, capsys
):
    # Before: 494 s of silence. The server "answered" the start-up check, then died.
    import mlflow
    from mlflow.exceptions import MlflowException

    from train import tracking

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in tracking.HTTP_RETRY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking, "_SERVERS_ANSWERED", {uri})
    tracking.bounded_http_retries()
    started = time.monotonic()
    with pytest.raises(MlflowException):
        mlflow.MlflowClient(uri).get_experiment_by_name("sample")
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert f"tracking server at {uri} did not answer" in err and "retrying" in err


# --------------------------------------------------------------------------- predict


def test_an_unwritable_output_folder_stops_before_the_first_row(
    model_path, table, unwritable_folder, run_cli
):
    code, _, err = run_cli("predict", model_path, table, "-o", unwritable_folder / "out.csv")
    assert (
        code == 2
        and "Cannot write the output" in err
        and "-o" in err
        and len(err.strip().splitlines()) == 1
    )


def test_an_unwritable_rejects_folder_stops_before_the_output_is_written(
    model_path, table, unwritable_folder, run_cli, tmp_path
):
    # Before: the output was complete while the rejects file was missing, so predicted + rejected !=
    # read.
    code, _, err = run_cli(
        "predict",
        model_path,
        table,
        "-o",
        tmp_path / "out.csv",
        "--rejects",
        unwritable_folder / "rejects.csv",
    )
    assert code == 2 and "Cannot write the rejects file" in err and "--rejects" in err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.parts").exists()


def test_output_and_rejects_are_published_together_or_not_at_all(
    model_path, table, tmp_path, monkeypatch
):
    from train import predict

    real = predict._join_parts

    def disk_full_on_rejects(files, destination, fmt, header=True):
        if "rejects" in destination.name:
            raise OSError(28, "No space left on device")
        return real(files, destination, fmt, header)

    # The output is joined first; a failure while joining the rejects must not leave it alone.
    monkeypatch.setattr(predict, "_join_parts", disk_full_on_rejects)
    with pytest.raises(OSError):
        predict.predict_file(
            str(model_path),
            str(table),
            str(tmp_path / "out.csv"),
            predict.PredictOptions(jobs=1),
            log=lambda m: None,
        )
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.rejects.csv").exists()
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(predict, "_join_parts", real)
    summary = predict.predict_file(
        str(model_path),
        str(table),
        str(tmp_path / "out.csv"),
        predict.PredictOptions(jobs=1, resume=True),
        log=lambda m: None,
    )
    assert (summary.rows_read, summary.predicted, summary.rejected) == (2, 1, 1)
    assert (
        len(pd.read_csv(tmp_path / "out.csv")) == 1
        and len(pd.read_csv(tmp_path / "out.rejects.csv")) == 1
    )


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_their_parent_dies(model_path, tmp_path, how):
    # Before: the workers of a killed `stance predict --jobs 2` lived on for minutes, ~235 MB each.
    rows = pd.DataFrame(
        {
            "text": [
                f"Sentence number {i} on the strikes and {i % 97} of their critics."
                for i in range(200_000)
            ]
        }
    )
    rows.assign(target="Iran's missile strikes").to_csv(tmp_path / "big.csv", index=False)
    args = [
        "predict",
        model_path,
        tmp_path / "big.csv",
        "-o",
        tmp_path / "out.csv",
        "--jobs",
        "2",
        "--chunk-size",
        "2000",
    ]
    process = subprocess.Popen(
        stance_command(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    parent = psutil.Process(process.pid)
    assert _wait_for(
        lambda: len(parent.children()) >= 2 and any((tmp_path / "out.csv.parts").glob("0*.json")),
        120,
    )
    workers = parent.children()
    process.send_signal(how)
    process.wait(timeout=30)
    assert _wait_for(
        lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 10
    )


def test_a_model_whose_extra_is_missing_is_refused_in_one_line(
    model_path, table, tmp_path, monkeypatch, run_cli
):
    # Before: every worker raised ImportError and the command ended in a traceback.
    from train import artifact
    from train.models import StanceModel

    model = StanceModel.load(model_path)
    model.config = {**model.config, "features": {**model.config["features"], "embeddings": {}}}
    model.save(tmp_path / "embedded.pkl")
    monkeypatch.setattr(
        artifact,
        "missing_extra",
        lambda: (
            "the 'embeddings' feature step needs tokenizers, which is not installed. Install the "
            "extra with: uv sync --extra embeddings"
        ),
    )
    code, _, err = run_cli("predict", tmp_path / "embedded.pkl", table, "-o", tmp_path / "out.csv")
    assert (
        code == 2
        and "uses the embeddings feature step" in err
        and "uv sync --extra embeddings" in err
    )
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.csv").exists()


def test_a_run_that_fails_before_the_first_row_leaves_no_folder_behind(table, tmp_path, run_cli):
    # The destinations are checked without creating them: a model that cannot be loaded
    # must not leave the output's new folder behind.
    code, _, err = run_cli(
        "predict",
        tmp_path / "no-such-model.pkl",
        table,
        "-o",
        tmp_path / "new" / "deeper" / "out.csv",
    )
    assert code == 2 and "No model" in err
    assert not (tmp_path / "new").exists()
