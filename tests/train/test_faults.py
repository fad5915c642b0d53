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
import sqlalchemy.exc

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


def test_trainings_at_once_on_a_new_and_then_an_existing_store(tmp_path, monkeypatch, run_cli):
    # Before: on a new SQLite file every one failed in alembic's migrations, and one try left the
    # store unusable. Three racing processes on two cores were enough to show it.
    import mlflow

    store = tmp_path / "mlflow.db"
    for at_once in (3, 2):  # on a new store, then on the one they made
        for process, out, err in _train_at_once(store, tmp_path, at_once):
            assert process.returncode == 0, err
            assert "run_id: " in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("sample").experiment_id])
    assert len(runs) == 5 and {run.info.status for run in runs} == {"FINISHED"}
    assert (
        len({run.data.metrics["test_macro_f1"] for run in runs}) == 1
    )  # same config and seed, same metrics
    code, out, _ = run_cli("runs", "sample")
    assert code == 0 and len(out.strip().splitlines()) == 6


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


def test_a_store_that_another_program_is_setting_up_is_waited_for(tmp_path, monkeypatch):
    # Before: `mlflow ui` or a notebook opening a new store at the same moment as a training made
    # one of them fail in MLflow's migrations with a traceback ("table ... already exists").
    import sqlite3

    import mlflow

    from train import store

    database = tmp_path / "mlflow.db"
    database.touch()  # the other program's connection made the file
    uri = f"sqlite:///{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(store, "FOREIGN_SETUP_WAITS_S", (0.01, 0.01, 0.01))
    real_client, tries = mlflow.MlflowClient, []

    def racing_client(*args, **kwargs):
        # The other program's first step, as MLflow's loser meets it: its table appeared
        # between our look and our create.
        tries.append(1)
        if len(tries) == 1:
            raise sqlalchemy.exc.OperationalError(
                "CREATE TABLE experiments",
                {},
                sqlite3.OperationalError("table experiments already exists"),
            )
        return real_client(*args, **kwargs)

    monkeypatch.setattr(mlflow, "MlflowClient", racing_client)
    assert store.configure() == uri and len(tries) == 2
    assert mlflow.MlflowClient(uri).get_experiment_by_name("Default") is not None


def _store_left_mid_migration(tmp_path: Path) -> tuple[str, Path]:
    import sqlite3

    database = tmp_path / "mlflow.db"
    # Made by another process, as another program would: MLflow caches a store it opened.
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import mlflow; mlflow.MlflowClient('sqlite:///{database}').search_experiments()",
        ],
        check=True,
        capture_output=True,
    )
    with sqlite3.connect(database) as connection:  # as a setup that died half way leaves it
        connection.execute("UPDATE alembic_version SET version_num = 'df50e92ffc5e'")
    connection.close()
    return f"sqlite:///{database}", database


def test_a_store_left_half_set_up_is_reported_in_one_line_with_the_fix(tmp_path, monkeypatch):
    from train import store
    from train.errors import TrackingError

    uri, database = _store_left_mid_migration(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(store, "FOREIGN_SETUP_WAITS_S", (0.01, 0.02))
    with pytest.raises(TrackingError) as raised:
        store.configure()
    message = str(raised.value)
    assert "half set up" in message and "in 0.03 s no other program finished them" in message
    assert f"delete {database}" in message and f"mlflow db upgrade {uri}" in message


def test_an_old_store_is_reported_at_once_not_waited_for(tmp_path, monkeypatch):
    from train import store
    from train.errors import TrackingError

    uri, database = _store_left_mid_migration(tmp_path)
    an_hour_ago = time.time() - 3600
    os.utime(database, (an_hour_ago, an_hour_ago))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(store, "FOREIGN_SETUP_WAITS_S", (60.0,))  # a wait would time the test out
    started = time.monotonic()
    with pytest.raises(TrackingError, match="out-of-date database schema"):
        store.configure()
    assert time.monotonic() - started < 30


def _database_of_another_application(tmp_path: Path, table: str) -> tuple[str, Path]:
    import sqlite3

    database = tmp_path / "app.db"
    with sqlite3.connect(database) as connection:
        connection.execute(f"CREATE TABLE {table} (name TEXT)")
    connection.close()
    a_day_ago = time.time() - 86400
    os.utime(database, (a_day_ago, a_day_ago))
    return f"sqlite:///{database}", database


def test_another_applications_database_is_refused_at_once_not_called_half_set_up(
    tmp_path, monkeypatch
):
    # A table named like one of MLflow's later tables: MLflow says "already exists".
    from train import store
    from train.errors import TrackingError

    uri, database = _database_of_another_application(tmp_path, "datasets")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(store, "FOREIGN_SETUP_WAITS_S", (60.0,))  # a wait would time the test out
    started = time.monotonic()
    with pytest.raises(TrackingError, match="already exists") as raised:
        store.configure()
    assert time.monotonic() - started < 30
    assert "half set up" not in str(raised.value) and "delete" not in str(raised.value)


def test_a_migration_that_fails_on_a_foreign_table_is_one_line_not_a_traceback(
    tmp_path, monkeypatch
):
    # Before: alembic's KeyError ('value') escaped from the migration of a table named "tags".
    from train import store
    from train.errors import TrackingError

    uri, _ = _database_of_another_application(tmp_path, "tags")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError, match="Cannot open the MLflow store") as raised:
        store.configure()
    assert "\n" not in str(raised.value)


def test_a_server_that_went_away_is_given_up_within_a_minute_saying_what_is_retried(
    monkeypatch, capsys
):
    # Before: 494 s of silence. The server "answered" the start-up check, then died.
    import mlflow
    from mlflow.exceptions import MlflowException

    from train import store

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in store.HTTP_RETRY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(store, "_SERVERS_ANSWERED", {uri})
    store.bounded_http_retries()
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
    from train.errors import StanceError

    real = predict._join_parts

    def disk_full_on_rejects(files, destination, fmt, header=True):
        if "rejects" in destination.name:
            raise OSError(28, "No space left on device")
        return real(files, destination, fmt, header)

    # The output is joined first; a failure while joining the rejects must not leave it alone.
    monkeypatch.setattr(predict, "_join_parts", disk_full_on_rejects)
    with pytest.raises(StanceError, match="the disk is full.* kept in .*--resume"):
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
    from features.embeddings import INSTALL_HINT as HINT
    from train import artifact
    from train.models import StanceModel

    model = StanceModel.load(model_path)
    model.config = {**model.config, "features": {**model.config["features"], "embeddings": {}}}
    model.save(tmp_path / "embedded.pkl")
    monkeypatch.setattr(
        artifact,
        "missing_extra",
        lambda: f"the 'embeddings' feature step needs tokenizers, which is not installed. {HINT}",
    )
    code, _, err = run_cli("predict", tmp_path / "embedded.pkl", table, "-o", tmp_path / "out.csv")
    assert (
        code == 2
        and "uses the embeddings feature step" in err
        and "python3 -m uv sync --frozen --all-extras" in err
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


# --------------------------------------------------------------------------- runs left behind


def _slow_training_data(folder: Path) -> Path:
    """About 12,000 distinct labelled sentences: a training long enough (seconds) to be
    stopped while its run is open."""
    sample = pd.read_csv(REPO / "data" / "sample" / "sentences.csv")
    rows = sample.sample(12_000, replace=True, random_state=0).reset_index(drop=True)
    rows["id"] = [f"r{i}" for i in range(len(rows))]
    rows["sentence"] = [f"{text} (case {i})" for i, text in enumerate(rows["sentence"])]
    path = folder / "big.csv"
    rows.to_csv(path, index=False)
    return path


def _start_training_and_wait_for_its_run(tmp_path: Path):
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # This process's client is a program other than stance: it must not create the new store's
    # tables while the training does (tests/train/test_store.py covers that race).
    client = mlflow.MlflowClient(store)
    client.search_experiments()
    data = _slow_training_data(tmp_path)
    process = subprocess.Popen(
        stance_command(
            "train", SAMPLE, "--data-dir", tmp_path, "--set", f'data.path="{data.name}"'
        ),
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def running():
        experiment = client.get_experiment_by_name("sample") if process.poll() is None else None
        return experiment and client.search_runs([experiment.experiment_id])

    assert _wait_for(running, 120), process.communicate()[1][-2000:]
    (run,) = running()
    assert run.info.status == "RUNNING"
    return process, client, run.info.run_id, store


def test_a_training_stopped_with_sigterm_ends_as_killed_in_one_line(tmp_path):
    # Before: the run stayed RUNNING in `stance runs` forever.
    process, client, run_id, _ = _start_training_and_wait_for_its_run(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err.strip().splitlines()[-1] == (
        f"stopped by SIGTERM; run {run_id} is marked KILLED in the store"
    )
    assert client.get_run(run_id).info.status == "KILLED"


def test_a_training_killed_with_sigkill_shows_as_died_not_running(tmp_path, monkeypatch, run_cli):
    process, client, run_id, store = _start_training_and_wait_for_its_run(tmp_path)
    process.kill()
    process.wait(timeout=30)
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing could tell the store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    code, out, err = run_cli("runs", "sample")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith(run_id[:8]) or run_id in line)
    assert "DIED" in row and "RUNNING" not in row
    code, out, _ = run_cli("show", run_id)
    assert code == 0 and "status:     DIED (RUNNING in the store" in out


def test_a_live_run_of_this_host_is_not_called_gone(tracking):
    from train import store, tracking

    assert not store.process_gone(tracking.process_tags())
    assert store.process_gone(tracking.process_tags() | {"stance.process_started": "1.0"})
    assert not store.process_gone(tracking.process_tags() | {"stance.host": "another-machine"})
    # A container with this hostname and its own pids: its runs cannot be judged from here.
    gone_elsewhere = {"stance.process_started": "1.0", "stance.pid_namespace": "-1"}
    assert not store.process_gone(tracking.process_tags() | gone_elsewhere)


@pytest.mark.parametrize(
    "rows, problem, split",
    [
        # Split as a large file would be, one row cannot be; as a small one, it has one label.
        (["1,The strikes were lawful.,Iran,FAVOR"], "hold out a test split", "0"),
        (["1,The strikes were lawful.,Iran,FAVOR"], "fewer than two labels", "300"),
        (
            [f"{i},Sentence {i} on the strikes.,Iran,FAVOR" for i in range(40)],
            "fewer than two labels",
            "300",
        ),
    ],
    ids=["one row, split", "one row, small data", "one label"],
)
def test_a_training_file_that_cannot_train_stops_in_one_line_without_a_run(
    tmp_path, tracking, run_cli, rows, problem, split
):
    # Before: one row gave a 28-line traceback from train_test_split; one label left a FAILED
    # run in the store.
    import mlflow

    (tmp_path / "tiny.csv").write_text(
        "id,sentence,target,stance,confidence\n" + "\n".join(f"{row},1.0" for row in rows) + "\n"
    )
    code, _, err = run_cli(
        "train", SAMPLE, "--data-dir", tmp_path, "--set", 'data.path="tiny.csv"', *FAST,
        "--set", f"split.small_data_below={split}",
    )  # fmt: skip
    # Progress lines ("data: 40 rows read ...") may come first; the failure is one line.
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and problem in last, err
    assert err.count("error") == 1 and "Traceback" not in err
    experiment = mlflow.MlflowClient().get_experiment_by_name("sample")
    assert experiment is None or not mlflow.MlflowClient().search_runs([experiment.experiment_id])


def test_a_full_disk_during_predict_is_one_line_and_resume_finishes_byte_identical(
    model_path, tmp_path, monkeypatch, run_cli
):
    # Before: 39 lines of traceback for ENOSPC, though the data was safe.
    import errno

    from train import predict

    rows = pd.DataFrame({"text": [f"Sentence {i} about the strikes." for i in range(3_000)]})
    rows.assign(target="Iran's missile strikes").to_csv(tmp_path / "in.csv", index=False)
    arguments = ["--jobs", "1", "--chunk-size", "500", "--no-progress"]
    code, _, err = run_cli(
        "predict", model_path, tmp_path / "in.csv", "-o", tmp_path / "whole.csv", *arguments
    )
    assert code == 0, err

    real_write, calls = predict.write_atomic, []

    def disk_fills_at_the_fourth_part(frame, path, fmt):
        calls.append(path)
        if len(calls) == 7:  # two files a chunk: the fourth chunk's predictions
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(frame, path, fmt)

    monkeypatch.setattr(predict, "write_atomic", disk_fills_at_the_fourth_part)
    out = tmp_path / "out.csv"
    code, _, err = run_cli("predict", model_path, tmp_path / "in.csv", "-o", out, *arguments)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "Prediction stopped: the disk is full writing" in err
    assert "The 3 chunks finished are kept in" in err and "--resume" in err
    assert not out.exists()
    monkeypatch.setattr(predict, "write_atomic", real_write)
    code, _, err = run_cli(
        "predict", model_path, tmp_path / "in.csv", "-o", out, *arguments, "--resume"
    )
    assert code == 0, err
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()


@pytest.mark.parametrize("command", ["train", "predict"])
def test_a_header_naming_a_column_twice_is_refused_with_its_places(
    tmp_path, tracking, run_cli, model_path, command
):
    # Before: accepted, and the first of the two columns silently used.
    path = tmp_path / "twice.csv"
    if command == "train":
        path.write_text(
            "id,sentence,target,stance,confidence,sentence\n"
            "1,The strikes were lawful.,Iran,FAVOR,1.0,The strikes were reckless.\n"
        )
        argv = ["train", SAMPLE, "--data-dir", tmp_path, "--set", 'data.path="twice.csv"']
        column, places = "sentence", "2, 6"
    else:
        path.write_text("text,target,text\nThe strikes were lawful.,Iran,They were reckless.\n")
        argv = ["predict", model_path, path, "-o", tmp_path / "out.csv"]
        column, places = "text", "1, 3"
    code, _, err = run_cli(*argv)
    assert code == 2, err
    assert err.strip().splitlines()[-1] == (
        f"error: {path}, line 1: the header names the column {column!r} 2 times (columns "
        f"{places}), so which one to read is unclear; rename the others."
    )
    assert not (tmp_path / "out.csv").exists()
