"""Writing runs: every MLflow call that records something (a run, its params, metrics and
files, the logged model, a registered name). Opening the store and reading runs back is
train/store.py's."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import mlflow
import mlflow.data
import pandas as pd
import psutil
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from features.pipeline import extras_needed
from train import hardware, modelfile, schema, tables
from train.data import LoadedData
from train.duplicates import repeated_texts
from train.errors import (
    ModelError,
    StanceError,
    TrackingError,
    hold_termination,
    release_termination,
)
from train.models import ARTIFACT_KEY, MODEL_PACKAGES, Cascade, StanceModel, extra_packages
from train.scratch import pid_namespace
from train.store import (
    MODEL_SHA256_TAG,
    configure,
    fetched_model,
    quiet_mlflow_logging,
    store_uri,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
    with quiet_mlflow_logging(EXPERIMENT_SETUP_LOGGERS):
        try:
            mlflow.set_experiment(experiment)
        except MlflowException:  # another process created it between MLflow's lookup and its create
            mlflow.set_experiment(experiment)
    # SIGTERM is held while the run opens: arriving between the run's creation and the try
    # below, it would leave the run RUNNING. Released inside the try, a held one is raised there.
    hold_termination()
    try:
        run = mlflow.start_run(tags=tags | process_tags())
    except BaseException:
        release_termination()
        raise
    try:
        release_termination()
        yield run.info.run_id
    except KeyboardInterrupt as stop:
        # Stopped by the user or SIGTERM: KILLED, where MLflow's own context would say FAILED.
        stop.killed_run = _mark_killed(run.info.run_id)
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def _mark_killed(run_id: str) -> str | None:
    """End the open run as KILLED; ``run_id`` when the store took it, else None (`stance runs`
    then shows the run as DIED once its process is gone)."""
    killed = RunStatus.to_string(RunStatus.KILLED)
    try:
        mlflow.end_run(killed)
        return run_id
    except Exception:
        # Stopped in the middle of a write, the open run's session may refuse; a client call
        # opens a session of its own.
        pass
    try:
        mlflow.MlflowClient().set_terminated(run_id, killed)
    except Exception:  # the store itself is gone
        return None
    with contextlib.suppress(Exception):  # and this process no longer counts the run as open
        mlflow.end_run(killed)
    return run_id


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
    """Library versions, the seed, and the machine's kernel-choosing traits (train/hardware.py)."""
    mlflow.set_tags({f"version.{name}": version for name, version in versions.items()})
    found = hardware.machine()
    mlflow.set_tags({tag: found[key] for key, tag in schema.MACHINE_TAGS.items()})
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
def log_evaluation(split: str, report: str, figure, per_target: pd.DataFrame | None) -> None:
    mlflow.log_text(report, schema.evaluation_file("classification_report", split))
    mlflow.log_figure(figure, schema.evaluation_file("confusion_matrix", split))
    if per_target is not None:
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


@retry_when_locked
def log_predictions(split: str, frame: pd.DataFrame) -> None:
    """Per-row predictions, so that two runs on the same rows can be compared pairwise."""
    mlflow.log_text(frame.to_csv(index=False), schema.predictions(split))


@retry_when_locked
def log_report(
    reliability,
    bins: pd.DataFrame,
    weights: pd.DataFrame,
    errors: pd.DataFrame,
    card: str,
    rows: str = "test",
) -> None:
    """The report of a training run; ``rows`` names the predictions its reliability diagram and
    errors come from: the test split, or a small dataset's out-of-fold predictions."""
    mlflow.log_figure(reliability, f"report/reliability_{rows}.png")
    mlflow.log_text(bins.to_csv(index=False), f"report/reliability_{rows}.csv")
    mlflow.log_text(weights.to_csv(index=False), "report/top_features.csv")
    mlflow.log_table(errors, "report/misclassified.json")
    mlflow.log_text(card, schema.MODEL_CARD)


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
EXPERIMENT_SETUP_LOGGERS = {"mlflow.tracking.fluent": logging.WARNING}


def log_model(model: StanceModel | Cascade, example: pd.DataFrame) -> str:
    """Log the model as an MLflow pyfunc that ships this project's code; returns its URI."""
    with tempfile.TemporaryDirectory() as folder:
        artifact = Path(folder) / "model"
        fingerprint = modelfile.save(model, artifact)
        mlflow.set_tag(MODEL_SHA256_TAG, fingerprint)
        output = model.predict(example)
        with quiet_mlflow_logging(MODEL_LOGGING_LOGGERS):
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
