"""The model MLflow serves, logged as code rather than pickled ("models from code").

MLflow runs this file whenever it loads a logged stance model
(``mlflow.pyfunc.load_model``, ``mlflow models predict``, ``spark_udf``),
with the model's own copy of ``features/`` and ``train/`` on the path, and
serves the object passed to ``set_model``. Nothing is pickled: the model is built from its
folder (:mod:`train.modelfile`), whose arrays are checked against its manifest, and the
manifest against the fingerprint its run recorded, when the run can be reached.
"""

from __future__ import annotations

import logging

import mlflow
import pandas as pd

from train import modelfile, schema
from train.errors import ModelError
from train.models import ARTIFACT_KEY, StanceModel

_log = logging.getLogger(__name__)


class StancePyfunc(mlflow.pyfunc.PythonModel):
    """Serves a :class:`StanceModel` through ``mlflow.pyfunc``: DataFrame of text and target in,
    label and one ``proba_<LABEL>`` column per class out."""

    def load_context(self, context):
        folder = context.artifacts[ARTIFACT_KEY]
        run_id = (context.model_config or {}).get("run_id")
        self.model = StanceModel.load(folder, _recorded_fingerprint(run_id, folder))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        # `stance predict` prints this note itself; served models have only the log to say it in.
        if "target" in frame:
            note = self.model.unseen_target_note(
                self.model.unseen_targets(frame["target"].astype(str)), "rows"
            )
            if note:
                _log.warning(note.removeprefix("note: "))
        return self.model.predict(frame)


def _recorded_fingerprint(run_id: str | None, folder: str) -> str:
    """The fingerprint the model's run recorded; a model whose run recorded none, or that
    names no run, is refused, as `stance predict` refuses it."""
    found = modelfile.manifest_sha256(folder)
    if not run_id:
        raise ModelError(
            f"The served model in {folder} names no training run, so its fingerprint cannot be "
            "checked; log models with `stance train`."
        )
    try:
        tags = mlflow.MlflowClient().get_run(run_id).data.tags
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelError(
                f"The served model in {folder} names run {run_id}, which the store does not "
                "hold; its fingerprint cannot be checked, so it is refused."
            ) from None
        # Served away from the tracking store (a container): the manifest still checks the
        # arrays, but not that the manifest is the one trained. Say so in the log.
        _log.warning(
            "cannot reach run %s to check the model's fingerprint (%s); serving the model "
            "with sha256 %s as checked against its own manifest only",
            run_id,
            error.message,
            found,
        )
        return found
    recorded = tags.get(schema.MODEL_FILE_SHA256)
    if recorded is None:
        raise ModelError(
            f"Run {run_id} recorded no fingerprint of its model ({schema.MODEL_FILE_SHA256}); "
            "the served model is refused. Retrain it with `stance reproduce RUN`."
        )
    return recorded


mlflow.models.set_model(StancePyfunc())
