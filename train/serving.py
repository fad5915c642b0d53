"""The model MLflow serves, logged as code rather than pickled ("models from code").

MLflow runs this file whenever it loads a logged stance model
(``mlflow.pyfunc.load_model``, ``mlflow models predict``, ``spark_udf``),
with the model's own copy of ``features/`` and ``train/`` on the path, and
serves the object passed to ``set_model``. Nothing of this wrapper is
pickled: only the :class:`~train.models.StanceModel` artifact is.
"""

from __future__ import annotations

import logging

import mlflow
import pandas as pd

from train.models import ARTIFACT_KEY, StanceModel

_log = logging.getLogger(__name__)


class StancePyfunc(mlflow.pyfunc.PythonModel):
    """Serves a :class:`StanceModel` through ``mlflow.pyfunc``: DataFrame of text and target in,
    label and one ``proba_<LABEL>`` column per class out."""

    def load_context(self, context):
        self.model = StanceModel.load(context.artifacts[ARTIFACT_KEY])

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


mlflow.models.set_model(StancePyfunc())
