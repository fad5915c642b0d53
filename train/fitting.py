"""Fitting the estimator an experiment describes, wrapped with its labels and settings: what
`stance train`, `stance cv`, `stance search` and small-data estimates all fit."""

from __future__ import annotations

import functools

import pandas as pd

from features.base import TARGET, TEXT
from features.pipeline import build_features
from train.artifact import open_model
from train.config import Config
from train.data import check_training_labels
from train.errors import ConfigError, ModelError
from train.models import StanceModel, build_model, fit_model, needs_target


def fit_stance_model(
    config: Config, frame: pd.DataFrame, versions: dict | None = None
) -> StanceModel:
    """Fit the experiment's estimator on ``frame`` and wrap it with its labels and settings."""
    check_training_labels(config.labels, frame["label"])
    weights = frame["weight"].to_numpy() if config.data.use_weights else None
    prior = prior_model(config.model.init_from) if config.model.init_from else None
    try:
        estimator = fit_model(build_model(config, prior), frame, weights)
    except ValueError as error:
        # By scikit-learn's contract, feature steps and classifiers check their
        # parameters in fit, so a bad value in the experiment surfaces here.
        reason = str(error).rstrip(". ")
        step = _failing_feature_step(config, frame)
        where = (
            f"[features.{step}] in the experiment file and any {step}__... overrides"
            if step
            else ("[model.clf] and [features.*] in the experiment file and any --set overrides")
        )
        raise ConfigError(
            f"The model of {config.name!r} could not be fitted: "
            f"{f'feature step {step!r}: ' if step else ''}{reason}. Check {where}."
        ) from error
    return StanceModel(
        estimator,
        config.labels,
        config.to_dict(),
        needs_target(config, prior),
        dict(config.model.label_weights),
        versions=versions or {},
    )


@functools.lru_cache(maxsize=2)
def prior_model(uri: str) -> StanceModel:
    """The model ``model.init_from`` names, loaded once per process (a search fits many trials
    on it), built from its model folder with the checks `stance predict` makes."""
    try:
        model = open_model(uri).model
    except ModelError as error:
        raise ModelError(f"model.init_from = {uri!r}: {error}") from None
    if not isinstance(model, StanceModel):
        raise ConfigError(
            f"model.init_from = {uri!r} names a cascade; start from one of its two training runs."
        )
    return model


def _failing_feature_step(config: Config, frame: pd.DataFrame) -> str | None:
    """The first feature step that cannot be fitted alone on ``frame``, to name it in the error.

    Only called once fitting has failed: a FeatureUnion's error does not say
    which step raised it. None when every step fits alone (the classifier, or
    one target's rows under a per-target strategy).
    """
    for name, params in config.features.items():
        try:
            build_features({name: dict(params)}).fit(frame[[TEXT, TARGET]])
        except ValueError:
            return name
    return None
