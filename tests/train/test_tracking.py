import logging
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from train import store, tracking
from train.config import Config
from train.models import StanceModel, build_model, fit_model, runtime_versions

LABELS = ("FAVOR", "AGAINST", "NONE")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stance_model(sentences):
    config = Config.from_layers({"data": {"path": "x.csv", "labels": list(LABELS)}}, [])
    return StanceModel(
        fit_model(build_model(config), sentences),
        LABELS,
        config.to_dict(),
        versions=runtime_versions(),
    )


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.name}: {record.getMessage()}")


@pytest.mark.usefixtures("tracking")
def test_model_is_logged_as_code_quietly_and_serves_the_artifact(stance_model, sentences):
    records = Records()
    mlflow_logger = logging.getLogger("mlflow")
    with tracking.start_run("tracking-test", {}) as run_id:
        mlflow_logger.addHandler(records)
        try:
            tracking.log_model(stance_model, sentences[["text", "target"]].head(2))
        finally:
            mlflow_logger.removeHandler(records)
    # No CloudPickle caution, no input-example INFO, no unknown-pip warning.
    assert records.messages == []
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model")
    flavor = mlflow.models.Model.load(folder).flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in flavor  # nothing of the wrapper is pickled
    # The project's lock travels with the model, whatever the working directory (here tmp_path).
    assert (Path(folder) / "uv.lock").read_bytes() == (REPO / "uv.lock").read_bytes()
    # No path of the training machine: the code file and the model folder by their names in it.
    assert flavor["model_code_path"] == "serving.py"
    assert flavor["artifacts"]["stance_model"]["uri"] == "artifacts/model"
    assert str(REPO) not in (Path(folder) / "MLmodel").read_text()
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(
        sentences[["text", "target"]]
    )
    pd.testing.assert_frame_equal(
        served.reset_index(drop=True), stance_model.predict(sentences).reset_index(drop=True)
    )


@pytest.mark.usefixtures("tracking")
def test_a_new_store_and_experiment_are_created_without_mlflow_info_lines():
    records = Records()
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.addHandler(records)
    try:
        with tracking.start_run("brand-new", {}) as run_id:
            pass
    finally:
        mlflow_logger.removeHandler(records)
    assert records.messages == []
    assert mlflow.get_run(run_id).info.status == "FINISHED"
    assert logging.getLogger("mlflow.store.db.utils").level == logging.NOTSET  # restored


@pytest.mark.usefixtures("tracking")
def test_the_served_model_logs_which_rows_name_targets_it_has_no_weights_for(sentences, caplog):
    config = Config.from_layers(
        {
            "data": {"path": "x.csv", "labels": list(LABELS)},
            "model": {"strategy": "per_target", "min_target_rows": 5},
        },
        [],
    )
    model = StanceModel(
        fit_model(build_model(config), sentences),
        LABELS,
        config.to_dict(),
        versions=runtime_versions(),
    )
    with tracking.start_run("tracking-test", {}) as run_id:
        tracking.log_model(model, sentences[["text", "target"]].head(2))
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    with caplog.at_level(logging.WARNING, logger="train.serving"):
        served.predict(sentences[["text", "target"]].head(3))
    assert caplog.records == []  # every target known
    rows = pd.DataFrame(
        {
            "text": ["Rent caps help tenants", "Caps freeze building"],
            "target": ["rent caps", "rent caps"],
        }
    )
    with caplog.at_level(logging.WARNING, logger="train.serving"):
        labelled = served.predict(rows)
    assert len(labelled) == 2
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "2 rows name targets this model has no weights of its own for: 'rent caps' (2)"
    )
    assert "predicted by the joint model" in record.getMessage()


def _find_no_runs():
    assert store.find_runs(None).empty


def _look_up_an_unknown_run():
    from train.errors import StanceError

    with pytest.raises(StanceError, match="No run 'abc'"):
        store.run_info("abc")


@pytest.mark.usefixtures("tracking")
@pytest.mark.parametrize("first_use", [_find_no_runs, _look_up_an_unknown_run])
def test_a_new_store_opened_by_runs_or_compare_prints_no_mlflow_info_lines(first_use):
    records = Records()
    mlflow_logger = logging.getLogger("mlflow")
    mlflow_logger.addHandler(records)
    try:
        first_use()
    finally:
        mlflow_logger.removeHandler(records)
    assert records.messages == []
    assert Path("mlflow.db").exists()  # the store was created, only quietly


@pytest.mark.usefixtures("tracking")
def test_quieted_loggers_get_their_levels_back(stance_model, sentences):
    environment = logging.getLogger("mlflow.utils.environment")
    environment.setLevel(logging.DEBUG)
    with tracking.start_run("tracking-test", {}):
        tracking.log_model(stance_model, sentences[["text", "target"]].head(2))
    assert environment.level == logging.DEBUG


@pytest.mark.usefixtures("tracking")
def test_a_dataset_lost_to_a_concurrent_insert_is_logged_on_retry(sentences, monkeypatch):
    # Two search workers logging the same split at once: MLflow's look-up-then-insert lets both
    # insert, and the store refuses the second. The retry must find the first one's row.
    from mlflow.exceptions import MlflowException

    real, calls = mlflow.log_input, []

    def racing(dataset, context=None, **kwargs):
        calls.append(context)
        if len(calls) == 1:
            raise MlflowException(
                "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
                "datasets.name"
            )
        return real(dataset, context=context, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", racing)
    frame = sentences.assign(id=range(len(sentences)))[["id", "text", "target", "label"]]
    dataset = mlflow.data.from_pandas(frame, source="x.csv", name="train", targets="label")
    with tracking.start_run("tracking-test", {}) as run_id:
        tracking._log_input(dataset, "train")
    assert calls == ["train", "train"]
    assert [d.dataset.name for d in mlflow.get_run(run_id).inputs.dataset_inputs] == ["train"]

    def refused(dataset, context=None, **kwargs):
        raise MlflowException("permission denied")

    monkeypatch.setattr(mlflow, "log_input", refused)  # any other failure is not retried
    with (
        tracking.start_run("tracking-test", {}),
        pytest.raises(MlflowException, match="permission denied"),
    ):
        tracking._log_input(dataset, "train")


def test_a_run_stopped_while_its_store_refuses_the_first_end_is_still_marked_killed(
    tracking, monkeypatch
):
    # A SIGTERM in the middle of a write can leave the open run's session refusing end_run;
    # the suite saw the run then shown without KILLED.
    import mlflow

    from train import tracking as module

    real_end_run = mlflow.end_run
    refused = []

    def end_run_refusing_once(*args, **kwargs):
        if not refused:
            refused.append(1)
            raise RuntimeError("This Session's transaction has been rolled back")
        return real_end_run(*args, **kwargs)

    monkeypatch.setattr(mlflow, "end_run", end_run_refusing_once)
    with pytest.raises(KeyboardInterrupt) as stopped:
        with module.start_run("stopped", {}) as run_id:
            raise KeyboardInterrupt
    assert refused and stopped.value.killed_run == run_id
    assert mlflow.MlflowClient().get_run(run_id).info.status == "KILLED"
    assert mlflow.active_run() is None


def test_a_sigterm_while_the_run_opens_ends_it_killed_whichever_thread_took_the_signal(
    tracking, monkeypatch
):
    # The suite once saw `stopped by SIGTERM` with the run left RUNNING: the signal was masked in
    # the main thread only, and another thread took it while MLflow created the run.
    import mlflow

    from train import errors
    from train import tracking as module

    real_start_run = mlflow.start_run

    def start_run_then_sigterm(*args, **kwargs):
        run = real_start_run(*args, **kwargs)
        errors.terminate(15, None)  # the handler, as Python runs it for any thread's signal
        return run

    monkeypatch.setattr(mlflow, "start_run", start_run_then_sigterm)
    with pytest.raises(errors.Terminated) as stopped:
        with module.start_run("stopped", {}):
            pytest.fail("the held SIGTERM should be raised before the run's body")
    run_id = stopped.value.killed_run
    assert mlflow.MlflowClient().get_run(run_id).info.status == "KILLED"
    with pytest.raises(errors.Terminated):  # held no longer
        errors.terminate(15, None)
