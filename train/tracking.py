"""Every MLflow call the project makes: runs, params, metrics, artifacts and the logged model.

Without ``MLFLOW_TRACKING_URI`` runs go to MLflow's own default, a SQLite
store ``mlflow.db`` in the working directory; with it set they go to that
server. Open them with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.data
import pandas as pd
import psutil
import requests
from filelock import FileLock, Timeout
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from features.pipeline import extras_needed
from train import modelfile, schema, tables
from train.data import LoadedData
from train.duplicates import repeated_texts
from train.errors import ModelError, StanceError, TrackingError
from train.models import ARTIFACT_KEY, MODEL_PACKAGES, Cascade, StanceModel, extra_packages
from train.scratch import pid_namespace, scratch_folder

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# A run may be named by the start of its id, as git names commits: hex, four characters at least.
RUN_ID_PREFIX = re.compile(r"[0-9a-f]{4,31}")
AMBIGUOUS_SHOWN = 5
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def store_uri() -> str:
    """The tracking store every command logs to: ``MLFLOW_TRACKING_URI``, else ./mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


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
    try:
        with (
            _store_setup_lock(database if first_use else None, uri),
            _quiet_mlflow_logging(STORE_SETUP_LOGGERS),
        ):
            mlflow.MlflowClient(uri)
    except MlflowException as error:
        raise TrackingError(_store_problem(uri, error.message)) from None
    _STORES_OPENED.add(opened_key)
    return uri


_STORES_OPENED: set[str] = (
    set()
)  # checked and set up once per process; every command configures several times
# How long a command waits for another process that is creating or migrating the same SQLite store.
STORE_SETUP_WAIT_S = 300


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return Path(uri.removeprefix("sqlite:///").partition("?")[0])


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


def git_state() -> dict[str, str]:
    """The commit the code came from and whether the work tree had uncommitted changes."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    if commit.returncode != 0:
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {
        "git_commit": commit.stdout.strip(),
        "git_dirty": str(bool(status.stdout.strip())).lower(),
    }


@contextmanager
def start_run(experiment: str, tags: dict[str, str]):
    """Open a run in the named MLflow experiment; yields the run id."""

    configure()
    with _quiet_mlflow_logging(EXPERIMENT_SETUP_LOGGERS):
        try:
            mlflow.set_experiment(experiment)
        except MlflowException:  # another process created it between MLflow's lookup and its create
            mlflow.set_experiment(experiment)
    # SIGTERM is held while the run opens: arriving between the run's creation and the try
    # below, it would leave the run RUNNING. Released inside the try, a held one is raised there.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        run = mlflow.start_run(tags=tags | process_tags())
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        yield run.info.run_id
    except KeyboardInterrupt as stop:
        # Stopped by the user or SIGTERM: KILLED, where MLflow's own context would say FAILED.
        try:
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
            stop.killed_run = run.info.run_id
        except Exception:  # stopped mid-write, the store's session may refuse: shown as DIED
            pass
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def process_tags() -> dict[str, str]:
    """The process running a run, so that `stance runs` can tell a run whose process is gone
    (killed with SIGKILL, the machine rebooted) from one still going: host, pid, and the
    process's start time, which tells a reused pid from the same process."""
    me = psutil.Process()
    return {
        schema.HOST: socket.gethostname(),
        schema.PID_NAMESPACE: str(pid_namespace()),
        schema.PID: str(me.pid),
        schema.PROCESS_STARTED: repr(me.create_time()),
    }


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


@contextmanager
def command_run(experiment: str, results: dict, tags: dict[str, str] | None = None):
    """The run a command logs into, set up the one way every command needs it: tagged with its
    experiment and the code's commit, and with the results the command puts in ``results``
    (``model``, ``metrics``, ``predictions``) kept on disk if the store fails before they are
    logged (:func:`keep_unlogged`). Yields the run id, also stored as ``results["run_id"]``,
    with the tags in ``results["tags"]``."""
    results["tags"] = tags = {schema.EXPERIMENT: experiment, **git_state(), **(tags or {})}
    with keep_unlogged(results), start_run(experiment, tags) as run_id:
        results["run_id"] = run_id
        yield run_id


# Where a run's results go when MLflow fails before they could be logged (relative to the working
# directory).
UNLOGGED_FOLDER = Path("stance-unlogged")
# What a command can hand to keep_unlogged, and the file each is kept as.
UNLOGGED_FILES = {"model": "model", "metrics": "metrics.json", "predictions": "predictions.csv"}


@contextmanager
def keep_unlogged(results: dict):
    """Keep what a run computed when the tracking store fails before it was logged.

    Training or cross-validation can take minutes; a store that goes away meanwhile
    (a server restarted, a full disk) should cost the log, not the work. The caller
    puts the run id in ``results`` and, as soon as it has them, the fitted ``model``,
    the ``metrics`` and the ``predictions`` (a DataFrame). This sits outside
    ``start_run``, whose own closing call to the failed store would otherwise replace
    the error raised here.
    """

    try:
        yield
    except (MlflowException, OSError) as error:
        kept = [name for name in UNLOGGED_FILES if name in results]
        if not kept:  # nothing computed yet: the store's error says it all
            raise
        run_id = results.get("run_id") or time.strftime(
            "no-run-%Y%m%d-%H%M%S"
        )  # the store failed before the run opened
        reason = (getattr(error, "message", None) or str(error)).rstrip(". ")
        folder = UNLOGGED_FOLDER / run_id
        try:
            paths = [
                _write_unlogged(name, results[name], folder / UNLOGGED_FILES[name]) for name in kept
            ]
        except OSError as save_error:
            raise TrackingError(
                f"Logging run {run_id} failed: {reason}. Keeping its results in {folder} failed "
                f"too: {save_error}."
            ) from None
        fix = (
            "Fix the store (MLFLOW_TRACKING_URI)"
            if isinstance(error, MlflowException)
            else "Fix the cause (disk space, permissions)"
        )
        named = [
            f"{path} (`stance predict {path} INPUT -o OUTPUT` uses it)"
            if name == "model"
            else str(path)
            for name, path in zip(kept, paths)
        ]
        done = "the model was fitted" if "model" in results else "its results were computed"
        raise TrackingError(
            f"Logging run {run_id} failed after {done}: {reason}. Kept: {', '.join(named)}. {fix} "
            "and run the command again to log the run."
        ) from None


def _write_unlogged(name: str, value, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "model":
        value.save(path)
    elif name == "metrics":
        path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    else:
        value.to_csv(path, index=False)
    return path


# Waits before each retry of a call that found the SQLite store locked by another writer.
LOCKED_RETRY_WAITS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def retry_when_locked(call):
    """Retry ``call`` while a SQLite store says "database is locked", with bounded backoff.

    MLflow gives SQLite 20 s to wait for a lock, but a transaction that must upgrade
    its read lock to a write lock while another process writes fails at once. MLflow
    rolls such a transaction back whole, so the call had no effect and can run again.
    Meant for calls that log params, metrics, tags and artifacts, which land the same
    when repeated; after the last wait the error goes to the caller.
    """

    @functools.wraps(call)
    def retried(*args, **kwargs):

        for wait in (*LOCKED_RETRY_WAITS_S, None):
            try:
                return call(*args, **kwargs)
            except MlflowException as error:
                if wait is None or "database is locked" not in str(error):
                    raise
                print(
                    f"note: the MLflow store {store_uri()} is locked by another writer; trying "
                    f"{call.__name__} again in {wait:g} s.",
                    file=sys.stderr,
                )
                time.sleep(wait)

    return retried


@retry_when_locked
def log_config(config) -> None:
    params = {
        key: json.dumps(value) if isinstance(value, (list, dict)) else value
        for key, value in config.flat_params().items()
    }
    mlflow.log_params(params)
    mlflow.log_text(config.to_toml(), schema.CONFIG)


@retry_when_locked
def log_data(
    data: LoadedData,
    splits: dict[str, pd.DataFrame],
    data_dir: Path,
    repeats: dict[str, int] | None = None,
) -> None:
    """Hashes and row counts of every file, split sizes, copies of texts, rejected rows, and
    MLflow datasets."""
    repeats = repeated_texts(splits) if repeats is None else repeats
    manifest = {
        "data_dir": str(data_dir),
        "digest": data.digest,
        "files": [
            {
                "path": f.path,
                "relative_path": os.path.relpath(f.path, data_dir),
                "sha256": f.sha256,
                "rows_read": f.rows_read,
            }
            for f in data.files
        ],
        "rows_read": data.rows_read,
        "rows_kept": len(data.rows),
        "rows_rejected": len(data.rejects),
        "splits": {name: len(frame) for name, frame in splits.items()},
        **repeats,
    }
    mlflow.log_dict(manifest, schema.MANIFEST)
    mlflow.log_param("data.digest", data.digest)
    for f in data.files:
        mlflow.set_tag(f"data.sha256.{Path(f.path).name}", f.sha256)
    mlflow.log_metrics(
        {
            "rows_read": data.rows_read,
            "rows_kept": len(data.rows),
            "rows_rejected": len(data.rejects),
        }
        | {f"{name}_rows": len(frame) for name, frame in splits.items()}
        | repeats
    )
    if len(data.rejects):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "rejects.csv"
            data.rejects.to_csv(path, index=False)
            mlflow.log_artifact(str(path), "data")
    source = ", ".join(sorted({f.path for f in data.files}))
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # MLflow warns that its digest reads only part of large frames
        for name, frame in splits.items():
            dataset = mlflow.data.from_pandas(
                frame[["id", "text", "target", "label"]], source=source, name=name, targets="label"
            )
            _log_input(dataset, name)


# What the tracking store says when two writers insert the same row: SQLite, PostgreSQL, MySQL.
DUPLICATE_ROW = ("UNIQUE constraint", "duplicate key", "Duplicate entry")


def _log_input(dataset, context: str, attempts: int = 3) -> None:
    """MLflow looks a dataset up in the experiment and inserts it if absent, in two steps, so
    two processes logging the same dataset at once (a search shared by several workers) can
    both try the insert; the loser's transaction is rolled back, and its retry finds the row."""

    for attempt in range(attempts):
        try:
            return mlflow.log_input(dataset, context=context)
        except MlflowException as error:
            if attempt == attempts - 1 or not any(marker in str(error) for marker in DUPLICATE_ROW):
                raise
            time.sleep(0.2 * (attempt + 1))


@retry_when_locked
def log_environment(versions: dict[str, str], seed: int) -> None:
    mlflow.set_tags({f"version.{name}": version for name, version in versions.items()})
    mlflow.log_param("seed_used", seed)


@retry_when_locked
def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics(metrics)


@retry_when_locked
def log_fold_metrics(per_fold: list[dict[str, float]]) -> None:
    """Each fold's held-out metrics as ``fold_<name>``, one step per fold (1, 2, ...):
    MLflow plots them, and two cv runs on the same folds can be compared fold by fold."""
    for step, metrics in enumerate(per_fold, start=1):
        mlflow.log_metrics({f"fold_{name}": value for name, value in metrics.items()}, step=step)


@retry_when_locked
def log_evaluation_params(params: dict) -> None:
    """What an evaluation run scored: the model's strategy, classifier and headline metric, and the
    split.
    """
    mlflow.log_params({key: value for key, value in params.items() if value is not None})


@retry_when_locked
def log_evaluation(split: str, report: str, figure, per_target: pd.DataFrame) -> None:
    mlflow.log_text(report, schema.evaluation_file("classification_report", split))
    mlflow.log_figure(figure, schema.evaluation_file("confusion_matrix", split))
    mlflow.log_text(per_target.to_csv(index=False), schema.evaluation_file("per_target", split))


def log_child_run(
    parent_run_id: str, name: str, params: dict, metrics: dict, tags: dict[str, str] | None = None
) -> str:
    """A nested run under ``parent_run_id``, logged through the client so that trials on
    several threads do not share MLflow's active-run state."""
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    tags = {schema.PARENT: parent_run_id, schema.RUN_NAME: name, **(tags or {})}
    child = client.create_run(parent.info.experiment_id, tags=tags, run_name=name)
    client.log_batch(
        child.info.run_id,
        params=[
            mlflow.entities.Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v))
            for k, v in params.items()
        ],
        metrics=[
            mlflow.entities.Metric(k, float(v), int(time.time() * 1000), 0)
            for k, v in metrics.items()
        ],
    )
    client.set_terminated(child.info.run_id)
    return child.info.run_id


@retry_when_locked
def log_search_result(
    best_params: dict,
    best_value: float,
    default_value: float,
    test_metrics: dict,
    trials: int,
    best_config: str,
) -> None:
    mlflow.log_params(
        {
            f"best.{k}": json.dumps(v) if isinstance(v, (list, dict)) else v
            for k, v in best_params.items()
        }
    )
    mlflow.log_metrics(
        {"best_value": best_value, "default_value": default_value, "trials": trials, **test_metrics}
    )
    mlflow.log_text(
        best_config, schema.BEST_CONFIG
    )  # its config.toml is the experiment it searched


@retry_when_locked
def log_cascade(params: dict, metrics: dict[str, float], curve: pd.DataFrame, figure) -> None:
    """What `stance cascade` chose and from what: its runs, threshold, metrics and the
    validation curve it read the threshold from."""
    mlflow.log_params(params)
    mlflow.log_metrics(metrics)
    mlflow.log_text(curve.to_csv(index=False), schema.CASCADE_CURVE)
    mlflow.log_figure(figure, schema.CASCADE_FIGURE)


@retry_when_locked
def log_selection(
    params: dict, metrics: dict[str, float], selected: pd.DataFrame, artifact: str, fmt: str
) -> None:
    """What `stance select` read and chose: corpus hash, model, strategy, counts, and the rows
    handed to the annotator, so a model's annotation history can be followed run by run."""
    mlflow.log_params(params)
    mlflow.log_metrics(metrics)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(artifact).name
        tables.write_atomic(selected, path, fmt)
        mlflow.log_artifact(str(path), str(Path(artifact).parent))


def log_learning_curve(
    experiment: str,
    params: dict,
    curves: pd.DataFrame,
    table: pd.DataFrame,
    text: str,
    figure,
    metrics: dict[str, float],
) -> str:
    """A learning-curve benchmark as a run of its own (benchmarks/learning_curve.py): every
    round of every curve, the summary table, its markdown and the figure."""
    tags = {schema.BENCHMARK: "learning_curve"}
    with command_run(experiment, {}, tags) as run_id:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_text(curves.to_csv(index=False), "learning_curve/curves.csv")
        mlflow.log_text(table.to_csv(index=False), "learning_curve/summary.csv")
        mlflow.log_text(text, "learning_curve/summary.md")
        mlflow.log_figure(figure, "learning_curve/curves.png")
    return run_id


@retry_when_locked
def log_predictions(split: str, frame: pd.DataFrame) -> None:
    """Per-row predictions, so that two runs on the same rows can be compared pairwise."""
    mlflow.log_text(frame.to_csv(index=False), schema.predictions(split))


@retry_when_locked
def log_report(
    reliability, bins: pd.DataFrame, weights: pd.DataFrame, errors: pd.DataFrame, card: str
) -> None:
    mlflow.log_figure(reliability, "report/reliability_test.png")
    mlflow.log_text(bins.to_csv(index=False), "report/reliability_test.csv")
    mlflow.log_text(weights.to_csv(index=False), "report/top_features.csv")
    mlflow.log_table(errors, "report/misclassified.json")
    mlflow.log_text(card, schema.MODEL_CARD)


# The sha256 of a run's model manifest (its fingerprint), recorded when the model is logged and
# checked whenever it is fetched.
MODEL_SHA256_TAG = schema.MODEL_FILE_SHA256


# Where a stance model keeps its folder inside a logged MLflow model (ARTIFACT_KEY's artifact).
MODEL_FILE_IN_LOGGED_MODEL = "artifacts/model"


@dataclass(frozen=True)
class FetchedModel:
    # the model folder, or for a URI that names something else, what it names; removed afterwards
    path: Path
    run_id: str | None  # the run that logged it
    expected_sha256: str | None  # None: the run recorded no fingerprint


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


def register_model(run_id: str, name: str, alias: str | None = None) -> str:
    """Register the run's model under ``name`` (a new version) and point ``alias`` at it; returns
    the version.
    """

    configure()
    run = mlflow.MlflowClient().get_run(run_id)
    # MLflow 3 keeps a run's model as a logged model of its own (models:/m-...),
    # not under the run's artifacts; registering by runs:/ makes it look there first
    # and warn before falling back.
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{schema.MODEL}'",
        output_format="list",
    )
    if not logged:
        raise StanceError(
            f"Run {run_id} logged no model (search trials log none: register their parent run); "
            "`stance runs` lists the runs and their experiments."
        )
    _check_logged_model_file(logged[0].model_id, run)
    try:
        version = mlflow.register_model(f"models:/{logged[0].model_id}", name)
    except MlflowException as error:  # an empty name, or one with '/' or ':'
        raise StanceError(f"Cannot register run {run_id} as {name!r}: {error.message}") from None
    if alias:
        client = mlflow.MlflowClient()
        try:
            client.set_registered_model_alias(name, alias, version.version)
        except MlflowException as error:  # a malformed or reserved alias ("latest", "v3")
            # The version was made for this alias: take it back, so a failed command leaves nothing
            # behind.
            client.delete_model_version(name, version.version)
            raise StanceError(
                f"Cannot set alias {alias!r} on {name!r}: {error.message} Version "
                f"{version.version} was removed again, "
                "so nothing is registered; choose another alias."
            ) from None
    return str(version.version)


def _check_logged_model_file(model_id: str, run) -> None:
    """A registered model is trusted by whoever loads it from the registry, so it must be the
    one its run logged (the recorded fingerprint) and build from its data."""

    named = f"the model of run {run.info.run_id}"
    expected = run.data.tags.get(MODEL_SHA256_TAG)
    if expected is None:
        raise ModelError(
            f"{named} has no recorded fingerprint ({MODEL_SHA256_TAG}), so nothing shows that "
            "its model is the one trained; it is not registered. Retrain it with `stance "
            "reproduce RUN`."
        )
    with fetched_model(f"models:/{model_id}") as fetched:
        StanceModel.load(fetched.path, expected, named)


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


def pip_requirements(versions: dict[str, str], uses_embeddings: bool = False) -> list[str]:
    """Exact pins of what the model needs to load, no more: inferring them would drag in the whole
    environment.
    """
    needed = [*MODEL_PACKAGES, *(extra_packages("embeddings") if uses_embeddings else ())]
    return [f"{name}=={versions[name]}" for name in needed if name in versions] + [
        f"mlflow=={versions['mlflow']}"
    ]


# Lines MLflow prints for every logged model that say nothing about this one: INFOs
# that it validates the input example and copies the uv files, and a warning that pip's
# version is unknown (uv environments have no pip; the model pins its own requirements).
MODEL_LOGGING_LOGGERS = {
    "mlflow.pyfunc": logging.WARNING,
    "mlflow.utils.uv_utils": logging.WARNING,
    "mlflow.utils.environment": logging.ERROR,
}
# Timestamped INFOs on a new store ("Creating initial MLflow database tables...") or
# experiment ("Creating a new experiment") in the middle of a command's own output.
STORE_SETUP_LOGGERS = {"mlflow.store.db.utils": logging.WARNING}
EXPERIMENT_SETUP_LOGGERS = {"mlflow.tracking.fluent": logging.WARNING}


@contextmanager
def _quiet_mlflow_logging(quieter: dict[str, int]):
    """Raise these MLflow loggers to the given levels for the block, then restore them."""
    before = {name: logging.getLogger(name).level for name in quieter}
    for name, level in quieter.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def log_model(model: StanceModel | Cascade, example: pd.DataFrame) -> str:
    """Log the model as an MLflow pyfunc that ships this project's code; returns its URI."""
    with tempfile.TemporaryDirectory() as folder:
        artifact = Path(folder) / "model"
        fingerprint = modelfile.save(model, artifact)
        mlflow.set_tag(MODEL_SHA256_TAG, fingerprint)
        output = model.predict(example)
        with _quiet_mlflow_logging(MODEL_LOGGING_LOGGERS):
            info = mlflow.pyfunc.log_model(
                name=schema.MODEL,
                python_model=str(PROJECT_ROOT / "train" / "serving.py"),
                artifacts={ARTIFACT_KEY: str(artifact)},
                code_paths=[str(PROJECT_ROOT / "features"), str(PROJECT_ROOT / "train")],
                signature=infer_signature(example, output),
                input_example=example,
                # The served model checks its folder against this run's recorded fingerprint.
                model_config={"run_id": mlflow.active_run().info.run_id},
                pip_requirements=pip_requirements(
                    model.versions, bool(extras_needed(model.step_names()))
                ),
                # MLflow copies uv.lock and pyproject.toml into the model when it finds them
                # in the working directory; naming the project makes that independent of
                # where `stance` runs, so every model carries the lock of the code it ships.
                uv_project_path=str(PROJECT_ROOT) if (PROJECT_ROOT / "uv.lock").exists() else None,
            )
        _drop_local_paths(info.model_id, Path(folder) / "MLmodel-fixed")
    return info.model_uri


def _drop_local_paths(model_id: str, work: Path) -> None:
    """Rewrite the logged MLmodel without the paths of the machine that trained it: MLflow
    records where the model code and the model folder were read from (a checkout, a temporary
    folder), though loading uses only the file's name and the copy inside the logged model."""
    work.mkdir()
    location = mlflow.get_logged_model(model_id).artifact_location.rstrip("/")
    local = Path(mlflow.artifacts.download_artifacts(f"{location}/MLmodel", dst_path=str(work)))
    description = mlflow.models.Model.load(local)
    flavor = description.flavors.get("python_function", {})
    if "model_code_path" in flavor:
        flavor["model_code_path"] = Path(flavor["model_code_path"]).name
    for artifact in flavor.get("artifacts", {}).values():
        if isinstance(artifact, dict) and "path" in artifact:
            artifact["uri"] = artifact["path"]
    description.save(local)
    mlflow.MlflowClient().log_model_artifact(model_id, str(local))
