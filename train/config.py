"""Experiment configs: a typed, frozen object built from a TOML file plus ``--set`` overrides.

An experiment file lists only what differs from :data:`DEFAULTS`. Sections
``[features.NAME]`` and ``[model.clf]`` hold the keyword arguments of the
pipeline steps, so an override reads like scikit-learn's ``set_params``::

    stance train experiments/sample.toml --set clf__C=0.5 --set word__ngram_range=[1,3]

Dotted keys reach everything else: ``--set data.on_bad_rows=quarantine``,
``--set seed=7``. ``--set features.style=false`` drops a feature step.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import tomli_w

from features.steps import BUILTIN_STEPS
from train import tables
from train.errors import ConfigError

# A user's table, in any format the readers know, or a public dataset in its own layout; each
# format's loader is in train/data.py, which builds its table of loaders from these names.
TABLE_FORMATS = tuple(dict.fromkeys(tables.FORMATS.values()))
PUBLIC_DATASET_FORMATS = ("semeval2016", "fnc1", "argq")
FORMATS = (*TABLE_FORMATS, *PUBLIC_DATASET_FORMATS)
BAD_ROW_POLICIES = ("error", "quarantine")
SPLIT_METHODS = ("stratified", "by_target", "by_group")
STRATEGIES = ("joint", "per_target", "shared_per_target")
# The strategies that learn weights of their own for each target seen in training.
PER_TARGET_STRATEGIES = ("per_target", "shared_per_target")
# How cross-validation folds keep related rows together (`stance cv --group-by`).
GROUPINGS = ("none", "target", "group", "hashtag")
# What rows on a target without weights of its own get: one wording for the model
# card's limits and for `stance predict`'s note.
UNSEEN_TARGETS_GET = {
    "per_target": "are predicted by the joint model trained on all targets",
    "shared_per_target": "get only the weights shared by all targets",
}
RECORD_FIELDS = ("text", "target", "label", "id", "weight", "split")

# The labels of the public datasets' loaders, in output order.
PUBLIC_LABELS = {
    "semeval2016": ("FAVOR", "AGAINST", "NONE"),
    "fnc1": ("agree", "disagree", "discuss", "unrelated"),
    "argq": ("PRO", "CON"),
}

# The embedded defaults. Every experiment file is merged onto these.
DEFAULTS: dict[str, Any] = {
    "name": "experiment",
    "seed": 13,
    "headline_metric": "macro_f1",
    "description": "",
    "data": {
        "format": "csv",
        "path": "",
        "columns": {},
        "labels": [],
        "label_map": {},
        "target": "",
        "target_names": {},
        "on_bad_rows": "error",
        "use_weights": False,
    },
    "split": {
        "method": "stratified",
        "valid_size": 0.15,
        "test_size": 0.15,
        # Below this many labelled rows (and without the dataset's own splits) no rows are held
        # out: repeated cross-validation over all of them estimates quality and the model is
        # fitted on every row. At 300 rows a 15 % test split is 45 rows, whose macro-F1 has a
        # 95 % interval about 0.25 wide, while each row held out still costs accuracy (the
        # learning curves climb past 200 rows). 0 always splits.
        "small_data_below": 300,
        "small_data_folds": 5,
        "small_data_repeats": 3,
    },
    "features": {
        "word": {"ngram_range": [1, 2], "negation": True, "min_df": 1},
        "char": {"ngram_range": [2, 5], "min_df": 2},
        "relatedness": {},
        "sentiment": {},
        "style": {},
    },
    "model": {
        "strategy": "joint",
        "classifier": "logreg",
        "min_target_rows": 30,
        # shared_per_target only: the strength of the shared copy of each feature.
        "shared_weight": 1.0,
        "refit_on_valid": False,
        "label_weights": {},
        "clf": {},
        # A model to start from (runs:/RUN_ID/model, models:/NAME@ALIAS or a file): its
        # probabilities join the features as the `prior` step. "" starts from nothing.
        "init_from": "",
        "prior_weight": 1.0,
    },
    # The search space of `stance search`: {override key: {low, high[, log]} or {choices}}.
    "search": {"metric": "", "space": {}},
}


def _freeze(value):
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


# The type of ``data.path``: one path, or a list of them (files or folders).
PATHS = "paths"


def _check_type(where: str, value, expected):
    if expected is PATHS:
        if isinstance(value, str) or (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)
        ):
            return value
        raise ConfigError(
            f"{where} must be a path or a non-empty list of paths, found {value!r} "
            f"({type(value).__name__})."
        )
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is Mapping:
        ok = isinstance(value, Mapping)
    elif expected is tuple:
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        name = {Mapping: "a table", tuple: "a list"}.get(expected, expected.__name__)
        raise ConfigError(f"{where} must be {name}, found {value!r} ({type(value).__name__}).")
    return value


def _choice(where: str, value, choices):
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where} must be one of {list(choices)}, found {value!r}.{hint}")


class _Section:
    """Builds a frozen dataclass from a dict, rejecting unknown keys with a suggestion."""

    @classmethod
    def from_dict(cls, raw: Mapping, where: str):
        known = {f.name: f for f in fields(cls)}
        unknown = [k for k in raw if k not in known]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown key {where}{key}; expected one of {sorted(known)}.{hint}")
        values = {}
        for name, spec in known.items():
            value = raw[name]
            if not isinstance(value, _Section):
                value = _check_type(f"{where}{name}", value, spec.metadata["type"])
            values[name] = _freeze(value)
        return cls(**values)


def _f(kind):
    return field(metadata={"type": kind})


@dataclass(frozen=True)
class DataConfig(_Section):
    format: str = _f(str)
    path: str | tuple = _f(PATHS)
    columns: Mapping = _f(Mapping)
    labels: tuple = _f(tuple)
    label_map: Mapping = _f(Mapping)
    target: str = _f(str)
    target_names: Mapping = _f(Mapping)
    on_bad_rows: str = _f(str)
    use_weights: bool = _f(bool)

    def __post_init__(self):
        _choice("data.format", self.format, FORMATS)
        _choice("data.on_bad_rows", self.on_bad_rows, BAD_ROW_POLICIES)
        if not all(p.strip() for p in self.paths):
            raise ConfigError(
                "data.path is empty; set it to a file or folder under the data root, e.g. path = "
                '"sample/sentences.csv", or to a list of them.'
            )
        if len(self.paths) > 1 and self.format not in TABLE_FORMATS:
            raise ConfigError(
                f"data.path lists {len(self.paths)} paths, but the {self.format} loader reads one "
                "folder; list several paths only for csv, tsv, jsonl or parquet files."
            )
        for name in self.columns:
            _choice("a key of data.columns", name, RECORD_FIELDS)
        if self.format in TABLE_FORMATS and not self.labels:
            raise ConfigError(
                f"data.labels is empty; a {self.format} dataset must list its labels, e.g. labels "
                '= ["FAVOR", "AGAINST", "NONE"].'
            )

    @property
    def paths(self) -> tuple[str, ...]:
        """``path`` as a list: several files (or folders of them) are read as one dataset."""
        return (self.path,) if isinstance(self.path, str) else tuple(self.path)


@dataclass(frozen=True)
class SplitConfig(_Section):
    method: str = _f(str)
    valid_size: float = _f(float)
    test_size: float = _f(float)
    small_data_below: int = _f(int)
    small_data_folds: int = _f(int)
    small_data_repeats: int = _f(int)

    def __post_init__(self):
        _choice("split.method", self.method, SPLIT_METHODS)
        for name in ("valid_size", "test_size"):
            size = getattr(self, name)
            if not 0 < size < 0.5:
                raise ConfigError(
                    f"split.{name} must be a fraction between 0 and 0.5, found {size}."
                )
        for name, least in (
            ("small_data_below", 0),
            ("small_data_folds", 2),
            ("small_data_repeats", 1),
        ):
            if getattr(self, name) < least:
                raise ConfigError(
                    f"split.{name} must be at least {least}, found {getattr(self, name)}."
                )


@dataclass(frozen=True)
class ModelConfig(_Section):
    strategy: str = _f(str)
    classifier: str = _f(str)
    min_target_rows: int = _f(int)
    shared_weight: float = _f(float)
    refit_on_valid: bool = _f(bool)
    label_weights: Mapping = _f(Mapping)
    clf: Mapping = _f(Mapping)
    init_from: str = _f(str)
    prior_weight: float = _f(float)

    def __post_init__(self):
        _choice("model.strategy", self.strategy, STRATEGIES)
        _choice("model.classifier", self.classifier, classifier_names())
        if not self.shared_weight > 0:
            raise ConfigError(
                f"model.shared_weight must be a positive number, found {self.shared_weight}."
            )
        for label, weight in self.label_weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                raise ConfigError(
                    f"model.label_weights.{label} must be a positive number, found {weight!r}."
                )
        if not self.prior_weight > 0:
            raise ConfigError(
                f"model.prior_weight must be a positive number, found {self.prior_weight}."
            )
        # Last, and imported here rather than at the top: the classes import scikit-learn (1-2 s),
        # which `stance --help` and every mistake found above should not wait for.
        from train.classifiers import CLASSIFIERS

        _check_kwargs(f"model.clf (for {self.classifier})", CLASSIFIERS[self.classifier], self.clf)


def _check_kwargs(where: str, cls, params: Mapping):
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in params:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown parameter {key!r} in {where}; accepted: {accepted}.{hint}")


# The built-in classifiers' names, checked before scikit-learn is imported. train.classifiers maps
# them to their classes (a test holds the two equal); register_classifier adds names there.
BUILTIN_CLASSIFIERS = (
    "logreg",
    "linear_svm",
    "nbsvm",
    "complement_nb",
    "multinomial_nb",
    "bernoulli_nb",
)


def step_names() -> list[str]:
    """The feature steps an experiment may name: the built-in ones, and those registered, which
    exist only once features.pipeline (where register_step lives) has been imported."""
    pipeline = sys.modules.get("features.pipeline")
    return sorted(pipeline.FEATURE_STEPS if pipeline else BUILTIN_STEPS)


def classifier_names() -> list[str]:
    """The classifiers an experiment may name, as :func:`step_names` does for steps."""
    classifiers = sys.modules.get("train.classifiers")
    return sorted(classifiers.CLASSIFIERS if classifiers else BUILTIN_CLASSIFIERS)


def _read_experiment(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"Experiment file {path} does not exist; the experiments/ folder lists the ones "
            "that do."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; expected an experiment file (.toml).") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}.") from None
    raw.setdefault("name", path.stem)
    return raw


def _merged(experiment: Mapping, overrides) -> dict:
    """Defaults, then the experiment, then the overrides; steps switched on with ``true`` get
    their defaults, steps switched off with ``false`` are dropped."""
    merged = _merge(copy.deepcopy(DEFAULTS), experiment)
    for override in overrides:
        _apply_override(merged, override)
    merged["features"] = {
        k: _step_defaults(k) if v is True else v
        for k, v in merged["features"].items()
        if v is not False
    }
    return merged


@dataclass(frozen=True)
class Config(_Section):
    """A resolved experiment: defaults, then the experiment file, then overrides.

    Examples
    --------
    >>> config = Config.from_toml("experiments/sample.toml", overrides=["clf__C=0.5"])
    >>> config.model.clf["C"]
    0.5
    """

    name: str = _f(str)
    description: str = _f(str)
    seed: int = _f(int)
    headline_metric: str = _f(str)
    data: DataConfig = _f(Mapping)
    split: SplitConfig = _f(Mapping)
    features: Mapping = _f(Mapping)
    model: ModelConfig = _f(Mapping)
    search: Mapping = _f(Mapping)

    @classmethod
    def from_dict(cls, raw: Mapping, where: str = ""):
        raw = dict(raw)
        # Step names first: a typo there is found without importing a step.
        if isinstance(raw.get("features"), Mapping):
            for step in raw["features"]:
                _choice("a [features] step", step, step_names())
        sections = {"data": DataConfig, "split": SplitConfig, "model": ModelConfig}
        for key, section in sections.items():
            if key in raw:
                raw[key] = section.from_dict(_check_type(key, raw[key], Mapping), f"{key}.")
        config = super().from_dict(raw, where)
        return config

    def __post_init__(self):
        from features.pipeline import (  # lazily, as in ModelConfig
            FEATURE_STEPS,
            STEP_DEFAULTS,
            extras_needed,
        )
        from train.metrics import metric_names

        if not 0 <= self.seed < 2**32:
            raise ConfigError(
                "seed must be a whole number from 0 to 2**32 - 1 (numpy's range), found "
                f"{self.seed}."
            )
        if not self.features:
            raise ConfigError(
                f"[features] enables no step; enable at least one of {sorted(FEATURE_STEPS)}."
            )
        for step, params in self.features.items():
            _choice("a [features] step", step, step_names())
            if not isinstance(params, Mapping):
                raise ConfigError(
                    f"features.{step} must be a table of its parameters, or true / false to switch "
                    f"it on / off; found {params!r}."
                )
            _check_kwargs(
                f"features.{step}", FEATURE_STEPS[step], {**STEP_DEFAULTS.get(step, {}), **params}
            )
        needing = extras_needed(self.features)
        if needing:
            from features.embeddings import missing_extra

            if problem := missing_extra():
                raise ConfigError(f"features.{next(iter(needing))}: {problem}")
        _check_search(self.search)
        unknown = [label for label in self.model.label_weights if label not in self.labels]
        if unknown:
            raise ConfigError(
                f"model.label_weights names {unknown[0]!r}, which is not a label; labels are "
                f"{list(self.labels)}."
            )
        known = metric_names(self.labels)
        if self.headline_metric not in known:
            raise ConfigError(
                f"headline_metric {self.headline_metric!r} does not apply to labels "
                f"{list(self.labels)}; choose one of {known}."
            )

    @property
    def labels(self) -> tuple[str, ...]:
        return labels_for(self.data)

    @classmethod
    def from_toml(cls, path: str | Path, overrides: list[str] = ()) -> Config:
        return cls.from_layers(_read_experiment(path), overrides)

    @classmethod
    def from_layers(cls, experiment: Mapping, overrides: list[str] = ()) -> Config:
        return cls.from_dict(_merged(experiment, overrides))

    @staticmethod
    def data_from_toml(path: str | Path, overrides: list[str] = ()) -> DataConfig:
        """The experiment's ``[data]`` section alone, resolved and checked as in the whole
        config: a command checks the files it names before the rest of the config, whose
        checks import scikit-learn."""
        merged = _merged(_read_experiment(path), overrides)
        return DataConfig.from_dict(_check_type("data", merged["data"], Mapping), "data.")

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Section):
                value = {g.name: _thaw(getattr(value, g.name)) for g in fields(value)}
            out[f.name] = _thaw(value)
        return out

    def to_toml(self) -> str:
        """The resolved config as TOML that loads back to an equal config.

        Default feature steps that this config dropped are written as ``step = false``,
        since loading merges onto the defaults again."""
        resolved = self.to_dict()
        for step in DEFAULTS["features"]:
            resolved["features"].setdefault(step, False)
        return tomli_w.dumps(resolved)

    def flat_params(self) -> dict[str, Any]:
        """Flattened ``section.key`` params, as logged to MLflow."""
        flat: dict[str, Any] = {}

        def walk(prefix, value):
            if isinstance(value, dict) and value:
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                flat[prefix] = value

        walk("", self.to_dict())
        return flat


def _check_search(search: Mapping) -> None:
    unknown = [k for k in search if k not in ("metric", "space")]
    if unknown:
        raise ConfigError(f"Unknown key search.{unknown[0]}; expected 'metric' and 'space'.")
    for key, spec in search["space"].items():
        where = f"search.space.{key}"
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"{where} must be a table such as {{ low = 0.01, high = 100, log = true }} or "
                f"{{ choices = [...] }}."
            )
        if "choices" in spec:
            if set(spec) != {"choices"} or not spec["choices"]:
                raise ConfigError(
                    f"{where}: a choice takes only a non-empty list, e.g. "
                    f"{{ choices = [[1, 1], [1, 2]] }}."
                )
        elif (
            not {"low", "high"} <= set(spec) <= {"low", "high", "log", "step"}
            or not spec["low"] < spec["high"]
        ):
            raise ConfigError(
                f"{where}: a range needs low < high (and optionally log = true or step), found "
                f"{dict(spec)}."
            )


def _merge(base: dict, layer: Mapping) -> dict:
    for key, value in layer.items():
        if (
            isinstance(value, Mapping)
            and isinstance(base.get(key), dict)
            and key not in ("columns", "label_map", "target_names", "clf", "label_weights", "space")
        ):
            _merge(base[key], value)
        elif key == "clf" and isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key].update(value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def parse_value(text: str):
    """Read an override value as TOML (numbers, booleans, lists); bare words stay strings."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _step_defaults(step: str) -> dict:
    """The parameters DEFAULTS gives a feature step, for ``features.STEP = true``; none for a step
    it leaves out.
    """
    defaults = DEFAULTS["features"].get(step)
    return copy.deepcopy(defaults) if isinstance(defaults, dict) else {}


def _apply_override(merged: dict, override: str):
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(
            f"Override {override!r} must look like key=value, e.g. clf__C=0.5 or "
            "data.on_bad_rows=quarantine."
        )
    value = parse_value(text)
    if "__" in key and "." not in key:
        step, _, param = key.partition("__")
        if step == "clf":
            path = ["model", "clf", param]
        elif step in step_names():
            path = ["features", step, param]
        else:
            raise ConfigError(
                f"Override {key!r}: {step!r} is not a pipeline step; steps are 'clf' and "
                f"{step_names()}."
            )
    else:
        path = key.split(".")
    node = merged
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is False or child is None or child is True:
            # A parameter of a step that is off (or merely "true") switches it on from its defaults.
            child = node[part] = (
                _step_defaults(part) if depth == 1 and path[0] == "features" else {}
            )
        if not isinstance(child, dict):
            raise ConfigError(f"Override {key!r}: {part!r} is not a section.")
        node = child
    node[path[-1]] = value


def labels_for(config: DataConfig) -> tuple[str, ...]:
    """The experiment's labels: ``data.labels``, else those of its public dataset."""
    return tuple(config.labels) or PUBLIC_LABELS[config.format]
