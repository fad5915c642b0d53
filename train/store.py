"""The tracking store: opening it, and reading what runs left in it (find a run, its params,
metrics, tags and files, and fetch its model). Writing runs is train/tracking.py's.

Without ``MLFLOW_TRACKING_URI`` runs go to a SQLite store ``mlflow.db`` in the working
directory; with it set they go to that database or server. Open them with
``mlflow ui --backend-store-uri sqlite:///mlflow.db``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
import mlflow.artifacts
import pandas as pd
import psutil
import requests
from alembic.util.exc import CommandError as AlembicCommandError
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from train import modelfile, schema
from train.errors import ModelError, StanceError, TrackingError
from train.localstore import (
    MODEL_FILE_IN_LOGGED_MODEL,
    RUN_ID_PREFIX,
    FetchedModel,
    sqlite_file,
    store_uri,
)
from train.scratch import pid_namespace, scratch_folder

AMBIGUOUS_SHOWN = 5


def configure() -> str:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps logs readable

    uri = store_uri()
    _check_server_answers(uri)
    mlflow.set_tracking_uri(uri)
    bounded_http_retries()
    # A client opens the store (MLflow caches it per URI), creating it on first use;
    # opened here, its setup INFOs stay out of every command's output, whichever comes first.
    database = sqlite_file(uri)
    # A relative SQLite URI names another file in each working directory.
    opened_key = str(database.resolve()) if database is not None else uri
    first_use = opened_key not in _STORES_OPENED
    if database is not None and first_use:
        _check_writable(database, uri)
    with (
        _store_setup_lock(database if first_use else None, uri),
        quiet_mlflow_logging(STORE_SETUP_LOGGERS),
    ):
        _open_while_another_sets_it_up(uri, database)
    _STORES_OPENED.add(opened_key)
    return uri


# Waits between tries to open a database store that another program is creating or migrating.
FOREIGN_SETUP_WAITS_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0)

# What MLflow raises when another process sets the store up at the same moment: a table that
# appeared after it looked (or a migration's temporary one), a migration step already taken, a
# table a migration is rebuilding. (A lock is not among them: SQLite already waits 20 s for one.)
FOREIGN_SETUP_SIGNS = (
    "already exists",
    "expected to match one row",
    "no such table",
)
# A schema found mid-way through its migrations is another's setup too. Any of these is taken
# for one only while the file is new or just changed: an old store left by an earlier MLflow,
# or another application's database, is reported at once.
OUT_OF_DATE = "out-of-date database schema"
RECENT_CHANGE_S = 30


def _open_while_another_sets_it_up(uri: str, database: Path | None) -> None:
    """Open the store, waiting out a setup that a program other than stance runs on it.

    stance's own commands take turns through the lock beside the file, but `mlflow ui`, a
    notebook's MlflowClient or a server do not: started on a new database at the same moment,
    each creates the tables and runs the migrations, and whoever loses the race fails half
    way. The winner finishes the setup, so after a short wait the store opens as it is.
    """
    waited, fresh = 0.0, _new_or_just_changed(database)  # before this process writes to it
    for wait in (*FOREIGN_SETUP_WAITS_S, None):
        try:
            mlflow.MlflowClient(uri)
            return
        except (MlflowException, SQLAlchemyError, AlembicCommandError) as error:
            message = error.message if isinstance(error, MlflowException) else str(error)
        except Exception as error:  # noqa: BLE001  (a migration meeting tables not MLflow's)
            raise TrackingError(
                _store_problem(uri, f"{type(error).__name__}: {error} while setting it up.")
            ) from None
        if not _another_is_setting_up(message, database, fresh):
            raise TrackingError(_store_problem(uri, message)) from None
        if wait is None:
            raise TrackingError(_half_set_up(uri, database, message, waited)) from None
        time.sleep(wait)
        waited += wait


def _another_is_setting_up(message: str, database: Path | None, fresh: bool) -> bool:
    if not any(sign in message for sign in (*FOREIGN_SETUP_SIGNS, OUT_OF_DATE)):
        return False
    if database is None:  # a server database: no file to date; its setup races all the same
        return OUT_OF_DATE not in message
    return fresh


def _new_or_just_changed(database: Path | None) -> bool:
    if database is None:
        return False
    # SQLite in WAL mode writes beside the file until a checkpoint.
    changed = [p for p in (database, database.with_name(database.name + "-wal")) if p.exists()]
    if not changed:
        return True
    return time.time() - max(path.stat().st_mtime for path in changed) < RECENT_CHANGE_S


def _half_set_up(uri: str, database: Path | None, message: str, waited: float) -> str:
    first_line = message.strip().splitlines()[0] if message.strip() else "no reason given"
    fresh = f"delete {database} and" if database is not None else "empty the database and"
    return (
        f"Cannot open the MLflow store: {_which_store(uri)}; its tables are half set up "
        f"(MLflow says: {first_line}), and in {waited:g} s no other program finished them. "
        "MLflow's own setup does not take turns, so a program other than stance (mlflow ui, "
        "a notebook) that opened the new store at the same moment can leave it so. If it is "
        f"a new MLflow store that holds no runs yet, {fresh} run the command again; otherwise "
        f"back it up and run `mlflow db upgrade {uri}`."
    )


_STORES_OPENED: set[str] = (
    set()
)  # checked and set up once per process; every command configures several times


# How long a command waits for another process that is creating or migrating the same SQLite store.
STORE_SETUP_WAIT_S = 300


def _check_writable(database: Path, uri: str) -> None:
    """SQLite needs to write the database and, for its journal, the folder that holds it.

    Without this check a store in a folder that cannot be written is found out only
    after MLflow's engine retries (about two minutes), and then as a traceback.
    """
    folder = database.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{database.name}-probe-"):
            pass
        if database.exists():
            with open(database, "r+b"):
                pass
    except OSError as error:
        where = "the working directory" if str(folder) in ("", ".") else str(folder)
        what = f"{folder.resolve()} ({where})" if where == "the working directory" else where
        raise TrackingError(
            f"Cannot write the MLflow store: {_which_store(uri)}, but {what} cannot be written "
            f"({error.strerror or error}). Run from a folder you can write to, or set "
            "MLFLOW_TRACKING_URI to a "
            f"database there, e.g. MLFLOW_TRACKING_URI=sqlite:///$HOME/mlflow.db."
        ) from None


@contextmanager
def _store_setup_lock(database: Path | None, uri: str):
    """Hold a lock beside a SQLite store while MLflow opens it for the first time in this process.

    Opening creates the tables on first use and migrates an old schema, neither of
    which MLflow makes safe to race: several commands started at once on a new file
    would each try, and the losers fail half way, sometimes leaving the store
    unusable. Under the lock one of them sets the store up and the others find it done.
    """
    if database is None:
        yield
        return
    lock = FileLock(f"{database}.lock", timeout=STORE_SETUP_WAIT_S)
    try:
        lock.acquire()
    except Timeout:
        raise TrackingError(
            f"Waited {STORE_SETUP_WAIT_S} s for another process setting up the MLflow store "
            f"{uri!r} ({database}.lock). "
            "Let it finish, or remove the lock file if no stance or mlflow process is running."
        ) from None
    try:
        yield
    finally:
        lock.release()


# MLflow retries a failing request to a server 7 times with doubling waits of up to
# 2 minutes, each try allowed 120 s: a server that dies mid-run was noticed after
# about 8 minutes, in silence. These bound one request to under a minute in all:
# 4 tries of at most 12 s each, and waits of about 1, 2 and 4 s between them.
# Variables the user sets are kept.
HTTP_RETRY_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "12",
}


def bounded_http_retries() -> None:
    for name, value in HTTP_RETRY_SETTINGS.items():
        os.environ.setdefault(name, value)
    connection_pool = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RetryNotice) for f in connection_pool.filters):
        connection_pool.addFilter(_RetryNotice())


class _RetryNotice(logging.Filter):
    """urllib3's own retry warning names its Retry object; this says the same in a user's words."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Retrying"):
            return True
        left = re.search(r"total=(\d+)", message)
        request = message.rpartition(": ")[2]
        print(
            f"note: the MLflow tracking server at {store_uri()} did not answer ({request}); "
            "retrying"
            + (f", {left.group(1)} more tries" if left else "")
            + " (each request gives up within a minute).",
            file=sys.stderr,
        )
        return False


SERVER_CONNECT_TIMEOUT_S = 10


_SERVERS_ANSWERED: set[str] = set()  # every command configures the store several times


def _check_server_answers(uri: str) -> None:
    """Fail at once when a tracking server cannot be connected to.

    MLflow retries every request to a server with backoff (about four minutes by
    default), which is right for a blip in a long run but wastes those minutes when
    the server is down before any work has started. Only a failed connection counts:
    any HTTP answer, a slow one, or a TLS complaint means something is listening,
    and MLflow's own calls then report what is wrong.
    """
    if not uri.lower().startswith(("http://", "https://")) or uri in _SERVERS_ANSWERED:
        return

    try:
        # Through the same proxies MLflow's requests would take.
        requests.head(
            uri, timeout=(SERVER_CONNECT_TIMEOUT_S, SERVER_CONNECT_TIMEOUT_S), allow_redirects=False
        ).close()
    except requests.exceptions.SSLError:
        pass  # a TLS complaint comes from something listening
    except (
        requests.exceptions.ConnectionError
    ) as error:  # refused, unresolved, or no answer to connect within the timeout
        raise TrackingError(
            f"Cannot reach the MLflow tracking server: {_which_store(uri)}, and connecting to it "
            f"failed ({_connection_reason(error)}). "
            f"Start the server (mlflow server --host HOST --port PORT) or fix the address, "
            f"or unset MLFLOW_TRACKING_URI to log to ./mlflow.db."
        ) from None
    except requests.exceptions.RequestException:
        pass  # a slow reply, a malformed URL and the like: MLflow's own calls say what is wrong
    _SERVERS_ANSWERED.add(uri)  # something listens: not asked again in this process


def _connection_reason(error: Exception) -> str:
    """The socket's own words ("[Errno 111] Connection refused"), not urllib3's wrapping of them."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return found.group(0).strip() if found else text


def _which_store(uri: str) -> str:
    return (
        f"MLFLOW_TRACKING_URI is {uri!r}"
        if os.environ.get("MLFLOW_TRACKING_URI")
        else f"the default store is {uri!r}"
    )


def _store_problem(uri: str, message: str) -> str:
    found = _which_store(uri)
    if "filesystem tracking backend" in message:  # a plain folder such as ./mlruns
        return (
            f"Cannot open the MLflow store: {found}, a folder store, which MLflow "
            f"{mlflow.__version__} no longer writes to. "
            "Set MLFLOW_TRACKING_URI to a database such as sqlite:///mlflow.db (`mlflow "
            "migrate-filestore` moves old runs into one), "
            f"or set MLFLOW_ALLOW_FILE_STORE=true to keep the folder."
        )
    first_line = message.strip().splitlines()[0] if message.strip() else "no reason given"
    return (
        f"Cannot open the MLflow store: {found}; MLflow says: {first_line} "
        "Expected a database URI (sqlite:///mlflow.db) or a server (http://host:5000); set "
        "MLFLOW_TRACKING_URI to one, or unset it for ./mlflow.db."
    )


def process_gone(tags: dict) -> bool:
    """Whether a RUNNING run's process has certainly ended: it ran on this host and no process
    with its pid and start time exists. A run from another host, or one logged before these
    tags existed, cannot be judged and is not called gone."""
    host, pid, started = (tags.get(k) for k in (schema.HOST, schema.PID, schema.PROCESS_STARTED))
    if host != socket.gethostname() or not (pid and started):
        return False
    # A container sharing the hostname has pids of its own: its processes cannot be seen here.
    if tags.get(schema.PID_NAMESPACE, str(pid_namespace())) != str(pid_namespace()):
        return False
    try:
        return repr(psutil.Process(int(pid)).create_time()) != started
    except (psutil.NoSuchProcess, ValueError):
        return True
    except psutil.Error:  # exists, but not ours to inspect: alive
        return False


# The sha256 of a run's model manifest (its fingerprint), recorded when the model is logged and
# checked whenever it is fetched.
MODEL_SHA256_TAG = schema.MODEL_FILE_SHA256


@contextmanager
def fetched_model(uri: str):
    """Download a ``runs:/`` or ``models:/`` model's folder to a temporary folder, removed
    afterwards, with the fingerprint its run recorded.

    Only the model folder is fetched, not the logged model's copy of the code, lock file
    and environment files, which prediction does not read: 1.8 MB less to copy per load.
    """

    configure()
    uri = full_run_uri(uri)
    with scratch_folder("model") as folder:
        try:
            run_id = _source_run_id(uri)
            expected = (
                mlflow.MlflowClient().get_run(run_id).data.tags.get(MODEL_SHA256_TAG)
                if run_id
                else None
            )
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{uri.rstrip('/')}/{MODEL_FILE_IN_LOGGED_MODEL}", dst_path=folder
                )
            except (
                MlflowException
            ):  # a URI that names the file itself, or a folder laid out otherwise
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
        except MlflowException as error:
            raise ModelError(
                f"Cannot fetch {uri} from {mlflow.get_tracking_uri()}: {error.message}"
            ) from None
        yield FetchedModel(Path(local), run_id, expected)


def logged_manifest_sha256(run_id: str) -> str | None:
    """The sha256 of the manifest of the run's logged model as the store holds it now, or None
    where it has none (a model of the pickle format)."""

    with scratch_folder("manifest") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{run_id}/{schema.MODEL}/{MODEL_FILE_IN_LOGGED_MODEL}/"
                f"{modelfile.MANIFEST}",
                dst_path=folder,
            )
        except MlflowException:
            return None
        return hashlib.sha256(Path(local).read_bytes()).hexdigest()


def _source_run_id(uri: str) -> str | None:
    """The run that logged the model a URI names: ``runs:/ID/...``, ``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS`` or MLflow 3's ``models:/m-ID`` (a logged model)."""
    if uri.startswith("runs:/"):
        return uri.removeprefix("runs:/").partition("/")[0]
    reference = uri.removeprefix("models:/").rstrip("/")
    client = mlflow.MlflowClient()
    if "@" in reference:
        name, _, alias = reference.rpartition("@")
        return client.get_model_version_by_alias(name, alias).run_id
    name, _, version = reference.rpartition("/")
    if name and version.isdigit():
        return client.get_model_version(name, version).run_id
    if reference.startswith("m-"):
        return mlflow.get_logged_model(reference).source_run_id
    return None


def full_run_uri(uri: str) -> str:
    """``runs:/PREFIX/path`` with the prefix widened to the run's full id, so a model is named the
    way ``compare`` and ``reproduce`` name its run; MLflow itself resolves only full ids."""
    run_id, sep, path = uri.removeprefix("runs:/").partition("/")
    if not uri.startswith("runs:/") or not RUN_ID_PREFIX.fullmatch(run_id):
        return uri
    return f"runs:/{_find_run(run_id).info.run_id}{sep}{path}"


def run_info(run_id: str) -> dict:
    """Params, metrics, tags and status of a run named by its id or a unique prefix of it
    (``stance compare`` and benchmarks/RESULTS.md print the first eight characters);
    ``run_id`` in the result is the full id. A clear error for an unknown or ambiguous id."""
    configure()
    run = _find_run(run_id)
    return {
        "run_id": run.info.run_id,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
        "start_time": run.info.start_time,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
    }


def _find_run(run_id: str):

    client = mlflow.MlflowClient()
    try:
        return client.get_run(run_id)
    except MlflowException:
        pass
    matches = []
    if RUN_ID_PREFIX.fullmatch(run_id):
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
        if experiment_ids:
            matches = client.search_runs(
                experiment_ids,
                filter_string=f"attributes.run_id LIKE '{run_id}%'",
                max_results=AMBIGUOUS_SHOWN,
            )
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(sorted(m.info.run_id for m in matches))
        raise StanceError(
            f"Run id {run_id!r} is the start of more than one run in {mlflow.get_tracking_uri()} "
            f"({shown}); give more of it."
        )
    short = (
        " (a prefix of a run id needs four characters at least)"
        if re.fullmatch(r"[0-9a-f]{1,3}", run_id)
        else ""
    )
    raise StanceError(
        f"No run {run_id!r} in {mlflow.get_tracking_uri()}{short}; `stance runs` lists the runs "
        "there."
    )


def read_artifact(run_id: str, path: str) -> str:
    """The text of one artifact of a run."""

    configure()
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)
    except (MlflowException, OSError):
        raise StanceError(
            f"Run {run_id} has no artifact {path}; it was not logged by this version of `stance "
            "train`."
        ) from None
    return Path(local).read_text(encoding="utf-8")


def has_artifact(run_id: str, path: str) -> bool:
    configure()
    folder = path.rpartition("/")[0]
    listed = mlflow.MlflowClient().list_artifacts(run_id, folder or None)
    return any(entry.path == path for entry in listed)


def artifact_paths(run_id: str) -> list[str]:
    """A run's top-level artifacts, folders with a trailing slash."""
    configure()
    return [
        entry.path + ("/" if entry.is_dir else "")
        for entry in mlflow.MlflowClient().list_artifacts(run_id)
    ]


def find_runs(experiment: str | None) -> pd.DataFrame:
    """Every run of one experiment (or of all), newest first, as MLflow's search frame."""
    configure()
    names = [experiment] if experiment else [e.name for e in mlflow.search_experiments()]
    if experiment and mlflow.get_experiment_by_name(experiment) is None:
        known = sorted(e.name for e in mlflow.search_experiments())
        raise StanceError(
            f"No experiment {experiment!r} in {mlflow.get_tracking_uri()}; experiments there: "
            f"{known}."
        )
    if not names:
        return pd.DataFrame()
    found = mlflow.search_runs(experiment_names=names, order_by=["attributes.start_time DESC"])
    if not found.empty:
        # Search trials logged before they carried the experiment tag still show where they belong.
        experiment_names = {e.experiment_id: e.name for e in mlflow.search_experiments()}
        found["experiment"] = found["experiment_id"].map(experiment_names)
    return found


# Timestamped INFOs on a new store ("Creating initial MLflow database tables...") or
# experiment ("Creating a new experiment") in the middle of a command's own output.
STORE_SETUP_LOGGERS = {"mlflow.store.db.utils": logging.WARNING}


@contextmanager
def quiet_mlflow_logging(quieter: dict[str, int]):
    """Raise these MLflow loggers to the given levels for the block, then restore them."""
    before = {name: logging.getLogger(name).level for name in quieter}
    for name, level in quieter.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
