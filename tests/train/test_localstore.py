"""A run's model read from a local SQLite store without MLflow, and every case left to MLflow."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import train.tracking
from train import localstore, modelfile, schema
from train.artifact import open_model
from train.errors import ModelError
from train.models import StanceModel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store_with_a_model(model_path, tmp_path_factory) -> tuple[Path, str]:
    """A SQLite store and its artifacts in a folder of their own, holding one run that logged the
    sample model (logged once: a pyfunc log takes seconds); its folder and the run's id."""
    folder = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        with tracking_run() as run_id:
            train.tracking.log_model(
                StanceModel.load(model_path), pd.DataFrame({"text": ["a reply"], "target": ["x"]})
            )
    return folder, run_id


@pytest.fixture
def logged_run(store_with_a_model, tracking, tmp_path) -> str:
    """The id of that run in a copy of the store under tmp_path (the ``tracking`` store), so a
    test may change the copy: its recorded locations are moved to the copy's folder."""
    original, run_id = store_with_a_model
    shutil.copy(original / "mlflow.db", tmp_path / "mlflow.db")
    shutil.copytree(original / "mlruns", tmp_path / "mlruns")
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        for table, column in LOCATIONS:
            connection.execute(
                f"UPDATE {table} SET {column} = REPLACE({column}, ?, ?)",
                (str(original), str(tmp_path)),
            )
    return run_id


# Where a store records absolute paths of its artifacts.
LOCATIONS = [
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
]


def tracking_run():
    return train.tracking.start_run("localstore-test", {})


def _database(tracking_uri: str) -> Path:
    return localstore.sqlite_file(tracking_uri)


def test_a_runs_uri_opens_without_importing_mlflow_and_matches_mlflows_copy(
    logged_run, tracking, tmp_path
):
    code = (
        "import sys\n"
        "from train.artifact import open_model\n"
        f"loaded = open_model('runs:/{logged_run[:6]}/model')\n"
        "assert 'mlflow' not in sys.modules, 'MLflow was imported'\n"
        "print(loaded.sha256)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": tracking}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is not None
        assert fetched.run_id == logged_run
        files = sorted(p.name for p in fetched.path.iterdir())
    assert done.stdout.strip() == fetched.expected_sha256
    assert files == sorted([modelfile.MANIFEST, modelfile.ARRAYS])
    assert not fetched.path.exists()  # the copy is removed with its scratch folder


def test_the_fast_route_reads_the_same_model_as_mlflows(logged_run, monkeypatch):
    from train import store

    texts = pd.DataFrame({"text": ["They are wrong.", "A fine idea."], "target": ["x", "x"]})
    fast = open_model(f"runs:/{logged_run}/model")
    monkeypatch.setattr(localstore, "_find", lambda uri: None)  # force MLflow's route
    with store.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched.expected_sha256 == fast.sha256
    slow = open_model(f"runs:/{logged_run}/model")
    assert slow.sha256 == fast.sha256
    assert fast.model.predict(texts).equals(slow.model.predict(texts))


def test_uris_of_other_shapes_are_left_to_mlflow(logged_run):
    shapes = [
        "models:/stance-sample@champion",
        "runs:/{run}/model/artifacts/model",
        "runs:/{run}/other",
        "runs:/{prefix3}/model",
        "runs:/{run}/../model",
        "runs:/{run}//model",
        "runs:/{run}",
    ]
    for shape in shapes:
        uri = shape.format(run=logged_run, prefix3=logged_run[:3])
        with localstore.fetched_model(uri) as fetched:
            assert fetched is None, uri


def test_a_server_or_a_missing_database_is_left_to_mlflow(logged_run, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is None
    missing = tmp_path / "elsewhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is None
    assert not missing.exists()  # read-only: a lookup never creates a store


def test_deleted_runs_and_ambiguous_prefixes_are_left_to_mlflow(logged_run, tracking):
    with tracking_run() as second:
        pass
    common = os.path.commonprefix([logged_run, second])
    with sqlite3.connect(_database(tracking)) as connection:
        connection.execute(
            "UPDATE runs SET run_uuid = ? WHERE run_uuid = ?",
            (logged_run[:4] + second[4:], second),
        )
    with localstore.fetched_model(f"runs:/{logged_run[:4]}/model") as fetched:
        assert fetched is None, f"two runs start with {logged_run[:4]} (common: {common!r})"
    with sqlite3.connect(_database(tracking)) as connection:
        connection.execute(
            "UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = ?", (logged_run,)
        )
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is None


def test_a_store_of_another_schema_is_left_to_mlflow(logged_run, tracking):
    with sqlite3.connect(_database(tracking)) as connection:
        connection.execute("ALTER TABLE logged_models RENAME TO logged_models_old")
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is None


def _model_folder(tracking_uri: str, run_id: str) -> Path:
    with sqlite3.connect(_database(tracking_uri)) as connection:
        (location,) = connection.execute(
            "SELECT artifact_location FROM logged_models WHERE source_run_id = ?", (run_id,)
        ).fetchone()
    return localstore._local_folder(location) / localstore.MODEL_FILE_IN_LOGGED_MODEL


def test_a_model_folder_holding_a_link_is_not_followed(logged_run, tracking, tmp_path):
    folder = _model_folder(tracking, logged_run)
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model", encoding="utf-8")
    (folder / "notes.txt").symlink_to(secret)
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is None


def test_a_model_changed_in_the_store_is_refused_on_the_fast_route(logged_run, tracking):
    manifest = _model_folder(tracking, logged_run) / modelfile.MANIFEST
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["model"]["params"]["note"] = "edited"
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is not None  # found, copied; the check comes on loading
    with pytest.raises(ModelError, match="was changed after training"):
        open_model(f"runs:/{logged_run}/model")


def test_a_run_without_a_fingerprint_is_refused_on_the_fast_route(logged_run, tracking):
    with sqlite3.connect(_database(tracking)) as connection:
        connection.execute(
            "DELETE FROM tags WHERE run_uuid = ? AND key = ?",
            (logged_run, schema.MODEL_FILE_SHA256),
        )
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is not None and fetched.expected_sha256 is None
    with pytest.raises(ModelError, match="recorded no fingerprint"):
        open_model(f"runs:/{logged_run}/model")


def test_a_location_with_percent_signs_is_left_to_mlflow(logged_run, tracking):
    with sqlite3.connect(_database(tracking)) as connection:
        connection.execute(
            "UPDATE logged_models SET artifact_location = artifact_location || '%41' "
            "WHERE source_run_id = ?",
            (logged_run,),
        )
    with localstore.fetched_model(f"runs:/{logged_run}/model") as fetched:
        assert fetched is None


def test_a_file_turned_into_a_link_after_listing_is_not_copied(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model", encoding="utf-8")
    (tmp_path / "manifest.json").symlink_to(secret)
    with pytest.raises(OSError):
        localstore._copy_regular_file(tmp_path / "manifest.json", tmp_path / "copy.json")
    assert not (tmp_path / "copy.json").exists()
