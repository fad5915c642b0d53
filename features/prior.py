"""A model trained earlier, as features: its label probabilities for each row.

A new target starts with a few dozen annotated rows, far too few to learn what stance
sounds like. A model trained on other targets has learned part of it (that sarcasm,
negation or a call to act carry stance), so its probabilities are a prior the new
model can weigh against the new target's own evidence: where the few rows agree with
the prior, the model leans on it; where they do not, its weight shrinks.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.base import TARGET, TEXT, RawTextInput, text_column
from features.state import Child, Int, Strings


class PriorModel(RawTextInput, TransformerMixin, BaseEstimator):
    """The probabilities of a fitted stance model, as ``proba_<LABEL>`` features.

    The model is frozen: ``fit`` reads its labels and never refits it, so the
    features mean what they meant when it was trained.

    Parameters
    ----------
    model : object
        A fitted model with ``labels`` and ``predict(frame)`` returning one ``proba_<LABEL>``
        column per label (a ``train.models.StanceModel``, as ``model.init_from`` loads it).
    weight : float, default 1.0
        Multiplies the probabilities: how loud the prior is beside the other features.

    Examples
    --------
    >>> import pandas as pd
    >>> class Constant:
    ...     labels = ("PRO", "CON")
    ...     def predict(self, frame):
    ...         return pd.DataFrame({"proba_PRO": [0.75] * len(frame), "proba_CON": 0.25})
    >>> rows = pd.DataFrame({"text": ["one", "two"], "target": ["t", "t"]})
    >>> PriorModel(Constant(), weight=2.0).fit(rows).transform(rows).tolist()
    [[1.5, 0.5], [1.5, 0.5]]
    """

    fitted_state = {"labels_": Strings("tuple"), "n_features_in_": Int()}
    part_params = {"model": Child(("StanceModel", "Cascade"))}

    def __init__(self, model=None, weight=1.0):
        self.model = model
        self.weight = weight

    def _check_params(self):
        if not isinstance(self.weight, (int, float)) or not self.weight > 0:
            raise ValueError(f"weight must be a number above 0, found {self.weight!r}")

    def fit(self, X, y=None):
        self._check_params()
        text_column(X, TEXT, type(self).__name__)
        if self.model is None or not callable(getattr(self.model, "predict", None)):
            raise ValueError(
                "the prior model is missing: model.init_from names the run whose model the new "
                'one starts from, e.g. init_from = "runs:/RUN_ID/model"'
            )
        self.labels_ = tuple(self.model.labels)
        self.n_features_in_ = 1
        return self

    def transform(self, X):
        check_is_fitted(self, "labels_")
        text_column(X, TEXT, type(self).__name__)  # a clear error for a list, or no text column
        frame = X[[c for c in (TEXT, TARGET) if c in X.columns]].reset_index(drop=True)
        proba = self.model.predict(frame)
        columns = [f"proba_{label}" for label in self.labels_]
        return np.asarray(proba[columns].to_numpy(dtype=float) * self.weight)

    def reads_target(self) -> bool:
        return bool(getattr(self.model, "needs_target", True))

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "labels_")
        return np.asarray([f"proba_{label}" for label in self.labels_], dtype=object)
