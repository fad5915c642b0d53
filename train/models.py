"""The joint and per-target strategies, and the saved model artifact.

Every model is a scikit-learn estimator that takes a DataFrame with ``text``
and ``target`` columns. :class:`StanceModel` wraps the fitted estimator with
its labels and the config that built it; training saves it and prediction
loads it, so predicting needs no config.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from features.base import TARGET, TEXT, reads_target, text_column
from features.onnx_encoder import RECIPE
from features.pipeline import build_features
from features.prior import PriorModel
from features.state import Bool, Child, ChildMap, Float, Json, Labels, Strings, Text
from features.target import TargetSpecificCopies
from train import modelfile

# CalibratedLinearSVC and NBSVM are imported here too because model files written before
# they moved to train.classifiers name them as train.models attributes.
from train.classifiers import NBSVM, CalibratedLinearSVC, build_classifier  # noqa: F401
from train.config import PER_TARGET_STRATEGIES, UNSEEN_TARGETS_GET
from train.errors import ConfigError, ModelError

ARTIFACT_FORMAT = modelfile.FORMAT
# Name of the StanceModel file among a logged MLflow model's artifacts.
ARTIFACT_KEY = "stance_model"


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
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from features import WordNgrams
    >>> X = pd.DataFrame(
    ...     {"text": ["yes good", "no bad", "yes fine", "no awful"], "target": ["a", "a", "b", "b"]}
    ... )
    >>> per_target = make_pipeline(WordNgrams(), LogisticRegression())
    >>> model = PerTargetClassifier(per_target, min_target_rows=2)
    >>> model.fit(X, ["FAVOR", "AGAINST", "FAVOR", "AGAINST"]).predict(X).tolist()
    ['FAVOR', 'AGAINST', 'FAVOR', 'AGAINST']
    """

    fitted_state = {"classes_": Labels(), "joint_": Child(), "estimators_": ChildMap()}
    part_params = {"estimator": Child()}

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
            params = {
                k: np.asarray(v)[mask] if hasattr(v, "__len__") and len(v) == len(y) else v
                for k, v in fit_params.items()
            }
            try:
                fitted = clone(self.estimator).fit(X[mask], y[mask], **params)
            except ValueError as error:  # say whose rows: the whole data may hold plenty
                raise ValueError(
                    f"the model of target {target!r} ({int(mask.sum())} rows): {error}"
                ) from error
            self.estimators_[target] = fitted
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
        return self.combine(
            [
                (rows, model.classes_, model.predict_proba(X.iloc[rows]))
                for model, rows in self.routes(X)
            ],
            len(X),
        )

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


def build_model(config, prior=None) -> BaseEstimator:
    """The estimator an experiment describes: ``Pipeline([("features", ...), ("clf", ...)])``.

    ``model.strategy`` picks how targets share what is learned: ``"joint"``, one
    model for all; ``"per_target"``, one model per target (in
    :class:`PerTargetClassifier`); ``"shared_per_target"``, one model on
    features copied per target (:class:`features.TargetSpecificCopies`), which
    learns weights for all targets and for each at once.

    With ``model.init_from``, the probabilities of the model it names (``prior``, loaded
    by the caller) join the features as the ``prior`` step: a new target with few rows
    starts from what a model of other targets learned.
    """
    features = build_features({name: dict(params) for name, params in config.features.items()})
    if config.model.init_from:
        # ``prior``: the model loaded from model.init_from (None only to check parameters).
        features.transformer_list.append(
            ("prior", PriorModel(model=prior, weight=config.model.prior_weight))
        )
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
                what, where = (
                    f"the classifier ({type(estimator).__name__})",
                    "[model.clf] (and any clf__... overrides)",
                )
            else:
                what, where = (
                    f"feature step {step!r} ({type(estimator).__name__})",
                    f"[features.{step}] (and any {step}__... overrides)",
                )
            reason = str(error).rstrip(". ")
            raise ConfigError(
                f"{config.name!r} cannot be trained: {what}: {reason}. Check {where} in the "
                "experiment file."
            ) from None


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
        """The text and target columns the estimator reads; a model that ignores targets gets empty
        ones.
        """
        frame = frame.copy()
        if TEXT not in frame.columns:
            raise ModelError(f"Input needs a {TEXT!r} column; found {list(frame.columns)}.")
        if TARGET not in frame.columns:
            if self.needs_target:
                raise ModelError(
                    f"This model needs a {TARGET!r} column (its features read the target); found "
                    f"{list(frame.columns)}."
                )
            frame[TARGET] = ""
        return frame[[TEXT, TARGET]]

    def decide(self, proba: np.ndarray, index) -> pd.DataFrame:
        """Labels and ``proba_<LABEL>`` columns from the estimator's probabilities (in its
        ``classes_`` order).
        """
        order = [list(self.estimator.classes_).index(label) for label in self.labels]
        proba = proba[:, order]
        out = pd.DataFrame(proba, columns=[f"proba_{label}" for label in self.labels], index=index)
        weights = np.array([self.label_weights.get(label, 1.0) for label in self.labels])
        out.insert(
            0, "label", np.asarray(self.labels, dtype=object)[np.argmax(proba * weights, axis=1)]
        )
        return out

    def own_targets(self) -> frozenset[str] | None:
        """Targets that have weights of their own, or None when the model treats every
        target alike (``joint``), so that none is unseen in that sense."""
        if isinstance(self.estimator, PerTargetClassifier):
            return frozenset(self.estimator.estimators_)
        features = (
            self.estimator.named_steps.get("features")
            if isinstance(self.estimator, Pipeline)
            else None
        )
        if isinstance(features, TargetSpecificCopies):
            return frozenset(features.targets_)
        return None

    def unseen_targets(self, targets: pd.Series) -> dict[str, int]:
        """Rows per target that the model has no weights of its own for (per-target strategies)."""
        known = self.own_targets()
        if known is None or not len(targets):
            return {}
        return {
            str(target): int(n)
            for target, n in targets[~targets.isin(known)].value_counts().items()
        }

    def unseen_target_note(self, unseen: dict[str, int], unit: str) -> str | None:
        """What a user should know when rows name targets without weights of their own."""
        known = self.own_targets()
        if not unseen or known is None:
            return None
        fallback = UNSEEN_TARGETS_GET.get(
            self.config.get("model", {}).get("strategy"), "are predicted by the model's fallback"
        )
        ranked = sorted(unseen.items(), key=lambda item: (-item[1], item[0]))
        named = ", ".join(f"{target!r} ({count:,})" for target, count in ranked[:5]) + (
            f" and {len(ranked) - 5} more" if len(ranked) > 5 else ""
        )
        return (
            f"note: {sum(unseen.values()):,} {unit} name targets this model has no weights of its "
            f"own for: {named}; "
            f"these {unit} {fallback}. Its own targets: {', '.join(sorted(known)) or 'none'}."
        )

    def route(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """:meth:`predict`, and which rows went on to another model: none (see :class:`Cascade`)."""
        return self.predict(frame), np.zeros(len(frame), dtype=bool)

    def step_names(self) -> list[str]:
        """The feature steps the model runs (what decides the extras it needs)."""
        return list(self.config.get("features", {}))

    def save(self, path: str | Path) -> Path:
        """Write the model folder (:mod:`train.modelfile`); the folder is returned."""
        modelfile.save(self, path)
        return Path(path)

    @staticmethod
    def load(
        path: str | Path, expected_sha256: str | None = None, source: str | None = None
    ) -> StanceModel | Cascade:
        """Build the model saved in the folder at ``path`` (:func:`train.modelfile.load`): data
        only, checked part by part; nothing in the folder is run.

        A :class:`Cascade` is a model too: it predicts through the same calls.
        """
        path = Path(path)
        if not path.exists():
            raise ModelError(
                f"No model at {source or path}; expected a model folder written by `stance train` "
                "or `stance cascade`."
            )
        model = modelfile.load(path, expected_sha256, source)
        if not isinstance(model, StanceModel | Cascade):
            raise ModelError(
                f"{source or path} holds a {type(model).__name__}, not a stance model written by "
                "`stance train` or `stance cascade`."
            )
        return model


CASCADE_FORMAT = "stance-cascade/1"


def confidence(predictions: pd.DataFrame, labels) -> np.ndarray:
    """How sure a model is of each row: its highest probability (the cascade's measure; on
    validation, the margin of the top two and the entropy did no better)."""
    return predictions[[f"proba_{label}" for label in labels]].to_numpy().max(axis=1)


def _predict(model: StanceModel, frame: pd.DataFrame) -> pd.DataFrame:
    return model.predict(frame)


@dataclass
class Cascade:
    """Two models of one task as one: the fast model answers the rows it is sure of, and the
    accurate model only the rest.

    A row is the fast model's when its highest probability is at least ``threshold``; every
    other row is forwarded, and gets the accurate model's label and probabilities, exactly as
    that model alone would give them. ``threshold`` 0 never forwards; above 1, always.
    ``stance cascade`` chooses it on validation rows (:mod:`train.cascade`).

    It answers the calls a :class:`StanceModel` answers (``predict``, ``labels``,
    ``needs_target``, ...), so prediction, serving and explanations take either.

    Examples
    --------
    >>> cascade = Cascade(fast_model, accurate_model, threshold=0.9)  # doctest: +SKIP
    >>> cascade.predict(frame)  # doctest: +SKIP
    """

    fast: StanceModel
    accurate: StanceModel
    threshold: float
    config: dict = field(default_factory=dict)  # the runs it joins, the threshold and its choice
    metrics: dict = field(default_factory=dict)
    format: str = CASCADE_FORMAT

    def __post_init__(self):
        if list(self.fast.labels) != list(self.accurate.labels):
            raise ModelError(
                "A cascade joins two models of the same labels; the fast model predicts "
                f"{list(self.fast.labels)}, the accurate one {list(self.accurate.labels)}. "
                "Train both on the same data."
            )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.accurate.labels

    @property
    def needs_target(self) -> bool:
        return self.fast.needs_target or self.accurate.needs_target

    @property
    def versions(self) -> dict:
        return self.accurate.versions

    def forwarded(self, fast_predictions: pd.DataFrame) -> np.ndarray:
        """Which rows of the fast model's output go on to the accurate model."""
        return confidence(fast_predictions, self.labels) < self.threshold

    def route(self, frame: pd.DataFrame, answer=None) -> tuple[pd.DataFrame, np.ndarray]:
        """The cascade's predictions, and which rows the accurate model gave.

        ``answer(model, frame)`` is how each model answers its rows (``model.predict`` unless
        given; explanations pass their own)."""
        answer = answer or _predict
        out = answer(self.fast, frame)
        forward = self.forwarded(out)
        if forward.any():
            accurate = answer(self.accurate, frame.loc[forward])
            for column in out.columns:  # column by column, so each keeps its dtype
                out.loc[forward, column] = accurate[column].to_numpy()
        return out, forward

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Labels and ``proba_<LABEL>`` columns, as :meth:`StanceModel.predict` gives them."""
        return self.route(frame)[0]

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        return (self.fast if self.fast.needs_target else self.accurate).model_input(frame)

    def own_targets(self) -> frozenset[str] | None:
        """Targets both models have weights of their own for (a row may reach either)."""
        own = [m.own_targets() for m in (self.fast, self.accurate)]
        known = [targets for targets in own if targets is not None]
        return frozenset.intersection(*known) if known else None

    def unseen_targets(self, targets: pd.Series) -> dict[str, int]:
        unseen: dict[str, int] = {}
        for model in (self.fast, self.accurate):
            for target, n in model.unseen_targets(targets).items():
                unseen[target] = max(unseen.get(target, 0), n)
        return unseen

    def unseen_target_note(self, unseen: dict[str, int], unit: str) -> str | None:
        return self.accurate.unseen_target_note(unseen, unit) or self.fast.unseen_target_note(
            unseen, unit
        )

    def step_names(self) -> list[str]:
        return list(dict.fromkeys([*self.fast.step_names(), *self.accurate.step_names()]))

    def save(self, path: str | Path) -> Path:
        modelfile.save(self, path)
        return Path(path)


# How a model file describes the model and the cascade (train/modelfile.py): every field is a
# constructor argument, checked by type; the estimator is built part by part.
modelfile.register_kind(
    StanceModel,
    params={
        "estimator": Child(),
        "labels": Strings("tuple"),
        "config": Json(mapping=True),
        "needs_target": Bool(),
        "label_weights": Json(mapping=True),
        "metrics": Json(mapping=True),
        "versions": Json(mapping=True),
        "format": Text(),
    },
)
modelfile.register_kind(
    Cascade,
    params={
        "fast": Child(("StanceModel",)),
        "accurate": Child(("StanceModel",)),
        "threshold": Float(),
        "config": Json(mapping=True),
        "metrics": Json(mapping=True),
        "format": Text(),
    },
)
modelfile.register_kind(PerTargetClassifier)
modelfile.register_kind(TargetSpecificCopies)
modelfile.register_kind(PriorModel)


def needs_target(config, prior=None) -> bool:
    """Whether the model reads each row's target: a per-target strategy routes by it, and a
    feature step may read it (each step says so itself, see :func:`features.base.reads_target`)."""
    steps = build_features(
        {name: dict(params) for name, params in config.features.items()}
    ).transformer_list
    reads_prior = bool(config.model.init_from) and getattr(prior, "needs_target", True)
    return (
        config.model.strategy in PER_TARGET_STRATEGIES
        or reads_prior
        or any(reads_target(step) for _, step in steps)
    )


# What a saved model needs to load and predict (pinned in every logged model), besides
# MLflow and the packages of the extras its steps use.
MODEL_PACKAGES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "nltk",
    "joblib",
    "vadersentiment",
    "safetensors",  # the model folder's arrays (train/modelfile.py)
    "pyarrow",  # and its string tables
)


@functools.cache
def extra_packages(extra: str) -> tuple[str, ...]:
    """The distributions of one of this project's extras, as pyproject.toml declares them
    (read from the installed metadata, so the list is written in one place)."""
    pattern = re.compile(rf"""^([A-Za-z0-9_.-]+).*;\s*extra\s*==\s*["']{re.escape(extra)}["']""")
    try:
        declared = importlib.metadata.requires("stance") or []
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return ()
    return tuple(found.group(1) for found in map(pattern.match, declared) if found)


def runtime_versions() -> dict[str, str]:
    # The encoder graph's recipe decides an onnxruntime encoder's vectors as much as a version.
    versions = {"python": platform.python_version(), "encoder_graph": RECIPE}
    for name in (*MODEL_PACKAGES, "mlflow", *extra_packages("embeddings")):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions
