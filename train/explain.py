"""Why a model gave a row its label: the features that added most to that label's score.

A linear model scores each label as a sum over features of value times weight, so a
row's label can be read back as the few terms of that sum that pushed it hardest.
The terms are those of the model that scored the row: under ``per_target`` a
target's own model, or the joint model for a target without one; under
``shared_per_target`` both the shared copy of a feature (``word__ban``) and the
target's copy (``Atheism|word__ban``) can appear. The 384 or more columns of a
sentence embedding mean nothing one by one, so they are summed into one term per
block (``embeddings__text``). The intercept and the probability calibration are
left out: they move every row alike.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.pipeline import Pipeline

from train.errors import ModelError
from train.models import Cascade, PerTargetClassifier, StanceModel, pipelines

# "embeddings__text_17", "Atheism|embeddings__text_cls_3", "embeddings__product_0"
_EMBEDDING_COLUMN = re.compile(r"^(.*embeddings__[a-z_]*?)_\d+$")


def check_explainable(model: StanceModel | Cascade) -> None:
    """Refuse, before any row is read, a model whose classifier has no weights per feature."""
    if isinstance(model, Cascade):
        check_explainable(model.fast)
        check_explainable(model.accurate)
        return
    for _, pipeline in pipelines(model.estimator):
        clf = pipeline.named_steps["clf"]
        if not hasattr(clf, "coef_"):
            classifier = model.config.get("model", {}).get("classifier", type(clf).__name__)
            raise ModelError(
                "--explain reads the weights of a linear classifier (logreg, linear_svm, nbsvm); "
                "this model's classifier is "
                f"{classifier!r}, whose scores are not a sum of feature weights. Predict without "
                "--explain, or train with one of those."
            )


def predict_explained(model: StanceModel | Cascade, frame: pd.DataFrame, top: int) -> pd.DataFrame:
    """``model.predict(frame)`` with an ``explanation`` column: each row's ``top`` largest
    positive terms toward its label, as ``"word__ban +0.41; char__ cru +0.22"`` (an empty
    string where no term is positive).

    Each route's features are computed once, for its probabilities and its explanations
    both; the labels and probabilities are those of ``model.predict``, bit for bit. A
    cascade's rows are explained by the model that answered them.
    """
    if top < 1:
        raise ModelError(f"--explain takes how many features to name, 1 or more; found {top}.")
    check_explainable(model)
    if isinstance(model, Cascade):
        return model.route(frame, functools.partial(predict_explained, top=top))[0]
    X = model.model_input(frame)
    per_target = isinstance(model.estimator, PerTargetClassifier)
    routes = model.estimator.routes(X) if per_target else [(model.estimator, np.arange(len(X)))]
    scored, matrices = [], []
    for pipeline, rows in routes:
        # As the pipeline's own predict_proba would: the classifier gets the features as they come.
        values = pipeline.named_steps["features"].transform(X.iloc[rows])
        clf = pipeline.named_steps["clf"]
        scored.append((rows, clf.classes_, clf.predict_proba(values)))
        matrices.append((pipeline, rows, sp.csr_matrix(values)))
    proba = model.estimator.combine(scored, len(X)) if per_target else scored[0][2]
    out = model.decide(proba, frame.index)
    labels = out["label"].to_numpy(dtype=object)
    explanations = np.full(len(X), "", dtype=object)
    for pipeline, rows, values in matrices:
        explanations[rows] = _explain_rows(pipeline, values, labels[rows], top)
    out["explanation"] = explanations
    return out


def group_names(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The term each column belongs to: itself, or its embedding block. Returns the
    distinct term names and each column's index among them."""
    grouped = [
        match.group(1) if (match := _EMBEDDING_COLUMN.match(name)) else name for name in names
    ]
    codes, uniques = pd.factorize(pd.Series(grouped, dtype=object), sort=False)
    return np.asarray(uniques, dtype=object), codes


# Feature names are listed once per fitted feature step, not once per chunk: an n-gram
# vocabulary holds hundreds of thousands. The step itself is kept so that its id cannot be reused.
_TERMS: dict[int, tuple[object, np.ndarray, np.ndarray]] = {}


def _terms_of(features) -> tuple[np.ndarray, np.ndarray]:
    held = _TERMS.get(id(features))
    if held is None or held[0] is not features:
        if len(_TERMS) >= 64:  # a long-lived process that loads model after model
            _TERMS.clear()
        held = _TERMS[id(features)] = (features, *group_names(features.get_feature_names_out()))
    return held[1], held[2]


def _explain_rows(
    pipeline: Pipeline, values: sp.csr_matrix, labels: np.ndarray, top: int
) -> list[str]:
    features, clf = pipeline.named_steps["features"], pipeline.named_steps["clf"]
    weights = np.asarray(
        clf.coef_.toarray() if sp.issparse(clf.coef_) else clf.coef_, dtype=np.float64
    )
    if weights.shape[0] == 1:  # two classes: one row of weights, positive for classes_[1]
        weights = np.vstack([-weights[0], weights[0]])
    # A label this target's model never saw cannot have won; its row gets a row of zero weights.
    weights = np.vstack([weights, np.zeros(weights.shape[1])])
    label_row = {label: row for row, label in enumerate(clf.classes_)}
    label_of_row = np.array(
        [label_row.get(label, len(label_row)) for label in labels], dtype=np.int64
    )
    term_names, term_of_column = _terms_of(features)
    # Every term of every row at once: value times the weight of the row's label, summed per term.
    row_of_entry = np.repeat(np.arange(values.shape[0]), np.diff(values.indptr))
    terms = sp.csr_matrix(
        (
            values.data * weights[label_of_row[row_of_entry], values.indices],
            (row_of_entry, term_of_column[values.indices]),
        ),
        shape=(values.shape[0], len(term_names)),
    )
    terms.sum_duplicates()
    rows = np.repeat(np.arange(terms.shape[0]), np.diff(terms.indptr))
    positive = terms.data > 0
    rows, columns, sums = rows[positive], terms.indices[positive], terms.data[positive]
    order = np.lexsort(
        (columns, -sums, rows)
    )  # per row, largest first; ties by column, so output is stable
    rows, columns, sums = rows[order], columns[order], sums[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    kept = rank < top
    explained = [[] for _ in range(values.shape[0])]
    for row, column, value in zip(rows[kept].tolist(), columns[kept].tolist(), sums[kept].tolist()):
        explained[row].append(f"{term_names[column]} {value:+.2f}")
    return ["; ".join(parts) for parts in explained]
