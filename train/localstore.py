"""A run's model read straight from a SQLite store on this machine, without importing MLflow.

Importing MLflow costs about 2.5 s, more than the rest of an accurate model's start-up. For the
common case, ``runs:/RUN/model`` with the default SQLite store and artifacts in local folders,
two read-only queries find the model's folder and the fingerprint its run recorded. Anything
else (a server, another database, a registry URI, a deleted run, an ambiguous prefix, a layout
this module does not know) answers ``None``, and :mod:`train.store` resolves it through MLflow
as before, with MLflow's errors.

Only paths the store itself recorded are read, and the model's files are copied to a scratch
folder before they are loaded, as MLflow's download does; the loader then checks them against
the fingerprint, so a model changed in place is refused either way.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from train import schema
from train.scratch import scratch_folder

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# Where a stance model keeps its folder inside a logged MLflow model (ARTIFACT_KEY's artifact).
MODEL_FILE_IN_LOGGED_MODEL = "artifacts/model"

# A run may be named by the start of its id, as git names commits: hex, four characters at least.
RUN_ID_PREFIX = re.compile(r"[0-9a-f]{4,31}")
RUN_ID = re.compile(r"[0-9a-f]{32}")

# MLflow's LoggedModelStatus.READY, as its SQL store writes it.
LOGGED_MODEL_READY = 2

# How long a query waits for a writer holding the database (a training logging its run).
BUSY_TIMEOUT_S = 10


@dataclass(frozen=True)
class FetchedModel:
    # the model folder, or for a URI that names something else, what it names; removed afterwards
    path: Path
    run_id: str | None  # the run that logged it
    expected_sha256: str | None  # None: the run recorded no fingerprint


def store_uri() -> str:
    """The tracking store every command logs to: ``MLFLOW_TRACKING_URI``, else ./mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri.removeprefix("sqlite:///").partition("?")[0])


@dataclass(frozen=True)
class _Found:
    folder: Path
    run_id: str
    expected_sha256: str | None


def _local_folder(location: str) -> Path | None:
    """An artifact location on this machine's disk (a path or ``file://`` URI), else None."""
    if "%" in location:  # MLflow unquotes some forms and not others: its rules apply
        return None
    parsed = urlparse(location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(parsed.path)
    if parsed.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def _find(uri: str) -> _Found | None:
    run_ref, _, path = uri.removeprefix("runs:/").partition("/")
    if not uri.startswith("runs:/") or path not in (schema.MODEL, f"{schema.MODEL}/"):
        return None
    if not RUN_ID_PREFIX.fullmatch(run_ref) and not RUN_ID.fullmatch(run_ref):
        return None
    database = sqlite_file(store_uri())
    if database is None or not database.is_file():
        return None
    try:
        connection = sqlite3.connect(
            f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
        )
    except sqlite3.Error:
        return None
    try:
        return _query(connection, run_ref)
    except sqlite3.Error:  # another schema, a locked or damaged file: MLflow says what is wrong
        return None
    finally:
        connection.close()


def _query(connection: sqlite3.Connection, run_ref: str) -> _Found | None:
    runs = connection.execute(
        "SELECT runs.run_uuid, runs.experiment_id, runs.artifact_uri, runs.lifecycle_stage, "
        "experiments.lifecycle_stage FROM runs JOIN experiments USING (experiment_id) "
        "WHERE runs.run_uuid LIKE ? LIMIT 2",
        (f"{run_ref}%",),
    ).fetchall()
    # A deleted run or experiment, or a prefix of two runs: MLflow's rules and errors apply.
    if len(runs) != 1 or runs[0][3:] != ("active", "active"):
        return None
    run_id, experiment_id, run_artifacts, _, _ = runs[0]
    # MLflow merges a run's own "model" folder into the logged model's; only the plain layout,
    # the logged model alone, is read here.
    run_folder = _local_folder(run_artifacts or "")
    if run_folder is None or os.path.lexists(run_folder / schema.MODEL):
        return None
    models = connection.execute(
        "SELECT artifact_location, lifecycle_stage, status FROM logged_models "
        "WHERE experiment_id = ? AND name = ? AND source_run_id = ?",
        (experiment_id, schema.MODEL, run_id),
    ).fetchall()
    if len(models) != 1 or models[0][1] != "active" or models[0][2] != LOGGED_MODEL_READY:
        return None
    model_root = _local_folder(models[0][0] or "")
    if model_root is None:
        return None
    tag = connection.execute(
        "SELECT value FROM tags WHERE run_uuid = ? AND key = ?",
        (run_id, schema.MODEL_FILE_SHA256),
    ).fetchone()
    return _Found(model_root / MODEL_FILE_IN_LOGGED_MODEL, run_id, tag[0] if tag else None)


def _plain_files(folder: Path) -> list[Path] | None:
    """The folder's entries, if it is a folder of regular files only (no links, no folders)."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
        entries = sorted(folder.iterdir())
        if not all(stat.S_ISREG(os.lstat(entry).st_mode) for entry in entries):
            return None
    except OSError:
        return None
    return entries


def _copy_regular_file(source: Path, destination: Path) -> None:
    """Copy ``source`` if it is still a regular file when opened (a link put in its place since
    it was listed is refused, not followed)."""
    descriptor = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(descriptor, "rb") as reading:
        if not stat.S_ISREG(os.fstat(reading.fileno()).st_mode):
            raise OSError(f"{source} is not a regular file")
        with open(destination, "xb") as writing:
            shutil.copyfileobj(reading, writing)


@contextmanager
def fetched_model(uri: str) -> Iterator[FetchedModel | None]:
    """The model ``runs:/RUN/model`` names, copied from a local SQLite store's artifact folder to
    a scratch folder (removed afterwards), with the fingerprint its run recorded; ``None`` where
    the store or URI is not of that kind and MLflow must resolve it."""
    found = _find(uri)
    files = _plain_files(found.folder) if found is not None else None
    if found is None or not files:
        yield None
        return
    with scratch_folder("model") as scratch:
        copy = Path(scratch) / schema.MODEL
        copy.mkdir()
        try:
            for file in files:
                _copy_regular_file(file, copy / file.name)
        except OSError:  # removed, replaced or unreadable since it was listed: MLflow reports it
            yield None
            return
        yield FetchedModel(copy, found.run_id, found.expected_sha256)
