"""Shared plumbing for transformers that read the ``text`` and ``target`` columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.state import Array, Int

TEXT, TARGET = "text", "target"
# What installs an optional extra. Every extra at once: `uv sync --extra A` removes the packages
# of an extra B installed before, and `pip install stance[...]` would fetch an unrelated project
# of that name from PyPI.
INSTALL_EXTRAS = "python3 -m uv sync --frozen --all-extras (run in the stance checkout)"


def text_column(X, column: str, owner: str) -> np.ndarray:
    """Return one column of a DataFrame-like input as an object array of str.

    Raises a ``ValueError`` that says which column was expected and which were
    found, because the commonest mistake is passing a bare list of strings.
    """
    if not hasattr(X, "columns"):
        raise ValueError(
            f"{owner} expects a pandas DataFrame with columns {TEXT!r} and {TARGET!r}, "
            f"got {type(X).__name__}. Wrap your data: "
            f"pd.DataFrame({{'text': texts, 'target': targets}})."
        )
    if column not in X.columns:
        raise ValueError(f"{owner} expects a column {column!r}; found columns {list(X.columns)}.")
    values = X[column].to_numpy(dtype=object)
    # Not astype(str): that builds a fixed-width array as wide as the longest
    # text, gigabytes for a chunk of news articles.
    return np.asarray(
        [v if isinstance(v, str) else ("" if pd.isna(v) else str(v)) for v in values], dtype=object
    )


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and the index of each input value among them.

    Stance data repeats itself (FNC-1 pairs one body with dozens of headlines;
    SemEval has five targets), so features are computed once per distinct value.
    """
    codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(uniques, dtype=object), codes


def reads_target(step) -> bool:
    """Whether a feature step reads the ``target`` column, so that a model using it needs a target
    for every row it predicts. A step says so with a ``reads_target()`` method; without one, it does
    not."""
    method = getattr(step, "reads_target", None)
    return bool(method()) if callable(method) else False


class RawTextInput:
    """Mixin declaring that an estimator reads a DataFrame of raw text, not a numeric array."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


class DenseFeatures(RawTextInput, TransformerMixin, BaseEstimator):
    """Base for small, hand-made numeric features.

    Subclasses implement ``_compute(frame) -> (n_samples, n_features) array``
    and ``_names() -> list[str]``. Values are non-negative by construction so
    that the naive Bayes models accept them; ``fit`` learns each column's
    maximum and ``transform`` divides by it, putting every feature on the same
    0-1 scale as TF-IDF weights.
    """

    fitted_state = {"scale_": Array("float64", 1), "n_features_out_": Int()}

    @staticmethod
    def check_state(step):
        if step.scale_.shape != (step.n_features_out_,):
            raise ValueError(
                f"scale_ has {len(step.scale_)} entries for {step.n_features_out_} features"
            )

    def _prepare(self, X):
        """Hook to validate parameters and build helpers during ``fit``."""

    def fit(self, X, y=None):
        self._prepare(X)
        values = self._compute(X)
        if (values < 0).any():  # pragma: no cover - guards subclasses
            raise ValueError(
                f"{type(self).__name__} produced negative values; features must be non-negative."
            )
        peak = values.max(axis=0) if len(values) else np.zeros(values.shape[1])
        self.scale_ = np.where(peak > 0, peak, 1.0)
        self.n_features_out_ = values.shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "scale_")
        return sp.csr_matrix(self._compute(X) / self.scale_)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "scale_")
        return np.asarray(self._names(), dtype=object)
