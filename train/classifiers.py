"""The classifiers an experiment can name in ``model.classifier``, and how to add one.

Every entry is a scikit-learn classifier: built with the experiment's ``[model.clf]``
parameters, fitted on the feature matrix, asked for ``predict_proba``. Two are this
project's own (a calibrated linear SVM and NB-SVM); the rest are scikit-learn's.
A leaf module (scikit-learn and numpy only), so the config can check a classifier's
name and parameters without importing the models built from it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import BernoulliNB, ComplementNB, MultinomialNB
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from features.state import Array, Child, Children, Int, Labels


class _SparseProbabilisticClassifier(ClassifierMixin, BaseEstimator):
    """What the two SVM classifiers share: sparse input, and the most probable class as the
    prediction.
    """

    def min_rows_per_label(self) -> int:
        """Rows of each label needed among those fitted on: calibration holds some out, so
        with it a label needs one row to fit on and one to calibrate on."""
        return 1 if self.calibration == "softmax" else 2

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
        Folds whose out-of-fold scores fit the calibration. An int is an upper bound: a label
        with fewer rows (two at least) sets the number of folds, so that a first round of a
        few dozen annotated rows can be fitted.
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

    def __init__(
        self,
        C=1.0,
        class_weight=None,
        calibration="sigmoid",
        cv=3,
        ensemble=False,
        max_iter=5000,
        random_state=0,
    ):
        self.C = C
        self.class_weight = class_weight
        self.calibration = calibration
        self.cv = cv
        self.ensemble = ensemble
        self.max_iter = max_iter
        self.random_state = random_state

    # What a model file keeps (features/state.py); coef_ is the SVM's own array, stored once.
    fitted_state = {
        "n_features_in_": Int(),
        "model_": Child(("LinearSVC", "CalibratedClassifierCV")),
        "classes_": Labels(),
        "coef_": Array("float64", 2),
        "n_iter_": Int(),
    }

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
            folds = (
                StratifiedKFold(
                    n_splits=_calibration_folds(self.cv, y, type(self).__name__),
                    shuffle=True,
                    random_state=self.random_state,
                )
                if isinstance(self.cv, int)
                else self.cv
            )
            self.model_ = CalibratedClassifierCV(
                svm, method=self.calibration, cv=folds, ensemble=self.ensemble
            )
            self.model_.fit(X, y, sample_weight=weights)
            fold_svms = [c.estimator for c in self.model_.calibrated_classifiers_]
        self.classes_ = self.model_.classes_
        # The weights a report shows per feature: averaged over the fold SVMs of an
        # ensemble, else the one SVM's own array, so the pickle stores it once
        # (a copy doubled the SemEval model, 557k columns x 3 classes).
        self.coef_ = (
            fold_svms[0].coef_
            if len(fold_svms) == 1
            else np.mean([svm.coef_ for svm in fold_svms], axis=0)
        )
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


def _calibration_folds(asked: int, y: np.ndarray, owner: str) -> int:
    """``asked`` folds, or as many as the rarest label has rows: each fold must hold one row
    of every label. One row of a label leaves nothing to calibrate on, said with the fix."""
    check_classification_targets(y)
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) < 2:  # the SVM says so itself
        return int(asked)
    rarest = int(counts.argmin())
    if counts[rarest] < 2:
        raise ValueError(
            f"{owner} calibrates its probabilities on held-out rows, so every label "
            "needs at least 2 rows among those it is fitted on (under cross-validation, each "
            f"fold's training rows); {labels.tolist()[rarest]!r} has 1. Annotate more rows of "
            "it, or "
            'set model.clf.calibration = "softmax" (probabilities from the SVM\'s scores, '
            "uncalibrated)."
        )
    return min(int(asked), int(counts[rarest]))


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

    def __init__(
        self,
        C=1.0,
        alpha=1.0,
        binarize=True,
        class_weight=None,
        calibration="sigmoid",
        cv=3,
        max_iter=5000,
        random_state=0,
    ):
        self.C = C
        self.alpha = alpha
        self.binarize = binarize
        self.class_weight = class_weight
        self.calibration = calibration
        self.cv = cv
        self.max_iter = max_iter
        self.random_state = random_state

    fitted_state = {
        "n_features_in_": Int(),
        "classes_": Labels(),
        "svms_": Children(("CalibratedLinearSVC",)),
        "ratios_": Array("float64", 2),
        "n_iter_": Int(),
    }

    @staticmethod
    def check_state(model):
        if model.ratios_.shape != (len(model.svms_), model.n_features_in_):
            raise ValueError(
                f"ratios_ has shape {list(model.ratios_.shape)} for {len(model.svms_)} SVMs and "
                f"{model.n_features_in_} features"
            )

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y, accept_sparse="csr")
        check_classification_targets(y)
        if not self.alpha > 0:
            raise ValueError(
                f"NBSVM needs alpha > 0 so that every ratio is finite; found alpha={self.alpha!r}."
            )
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"NBSVM needs at least two classes in y; found one class: {self.classes_[0]!r}."
            )
        if self.calibration != "softmax" and isinstance(self.cv, int):
            # A label of one row, named as the user wrote it, not as its one-vs-rest 0 or 1.
            _calibration_folds(self.cv, y, type(self).__name__)
        weights = compute_sample_weight(self.class_weight, y)
        if sample_weight is not None:
            weights = weights * np.asarray(sample_weight, dtype=float)
        signed = (
            np.asarray(X.min(axis=0).todense() if sp.issparse(X) else X.min(axis=0)).ravel() < 0
        )
        # Signed columns count as zero, so they weigh on no ratio's normalisation either.
        counts = _scale_columns(
            (X != 0).astype(float) if self.binarize else X, (~signed).astype(float)
        )
        # With two classes one SVM suffices: the other's ratios are these negated.
        positives = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        ratios, self.svms_ = [], []
        for positive in positives:
            in_class = y == positive
            p = np.asarray(counts[in_class].T @ weights[in_class]).ravel()[~signed] + self.alpha
            q = np.asarray(counts[~in_class].T @ weights[~in_class]).ravel()[~signed] + self.alpha
            ratio = np.ones(X.shape[1])
            ratio[~signed] = np.log(p / p.sum()) - np.log(q / q.sum())
            svm = CalibratedLinearSVC(
                C=self.C,
                calibration=self.calibration,
                cv=self.cv,
                max_iter=self.max_iter,
                random_state=self.random_state,
            )
            self.svms_.append(
                svm.fit(_scale_columns(X, ratio), in_class.astype(int), sample_weight=weights)
            )
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
        positive = np.column_stack(
            [
                svm.predict_proba(_scale_columns(X, ratio))[:, 1]
                for svm, ratio in zip(self.svms_, self.ratios_)
            ]
        )
        if len(self.classes_) == 2:
            return np.column_stack([1.0 - positive[:, 0], positive[:, 0]])
        total = positive.sum(axis=1, keepdims=True)
        # Sigmoid calibration never returns exactly 0, but isotonic can, for every class at once.
        return np.divide(
            positive, total, out=np.full_like(positive, 1.0 / len(self.classes_)), where=total > 0
        )


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


def register_classifier(
    name: str, cls: type, defaults: dict | None = None, seed_parameter: str | None = None
) -> None:
    """Make ``cls`` available as ``model.classifier = name``.

    ``defaults`` are parameters that differ from the class's own (an experiment's
    ``[model.clf]`` still overrides them); ``seed_parameter`` names the parameter that
    receives the experiment's seed, for classifiers that draw random numbers.

    Examples
    --------
    >>> from sklearn.linear_model import RidgeClassifier
    >>> register_classifier("ridge_example", RidgeClassifier)
    >>> type(build_classifier("ridge_example", {}, seed=0)).__name__
    'RidgeClassifier'
    >>> del CLASSIFIERS["ridge_example"]
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator) and hasattr(cls, "fit")):
        raise TypeError(
            f"register_classifier expects a scikit-learn estimator class; found {cls!r}."
        )
    CLASSIFIERS[name] = cls
    if defaults:
        CLASSIFIER_DEFAULTS[name] = dict(defaults)
    if seed_parameter:
        SEEDED[name] = seed_parameter


def build_classifier(name: str, params: dict, seed: int):
    kwargs = {**CLASSIFIER_DEFAULTS.get(name, {}), **params}
    if name in SEEDED:
        kwargs.setdefault(SEEDED[name], seed)
    return CLASSIFIERS[name](**kwargs)


def rows_needed_per_label(name: str, params: dict, seed: int) -> int:
    """How many rows of each label the classifier ``name`` must be fitted on: a classifier says
    so with a ``min_rows_per_label()`` method, else 1. Parameters it would refuse give 1 here;
    fitting names them."""
    try:
        classifier = build_classifier(name, params, seed)
    except (KeyError, TypeError, ValueError):
        return 1
    needs = getattr(classifier, "min_rows_per_label", None)
    return int(needs()) if callable(needs) else 1
