"""The model file: a folder of data that the loader builds a model from, never code it runs.

A saved model is a folder of two files:

- ``manifest.json``: the format version, then the model as a tree. Each part of it (the
  pipeline, each feature step, the classifier, a scikit-learn part inside them) is an entry
  ``{"kind": NAME, "params": {...}, "state": {...}}``: the name of a kind this module knows,
  its constructor parameters as plain values, and what ``fit`` left behind, as plain values
  or references to arrays. The resolved experiment config, labels, decision weights and package
  versions are entries of the top part. Last, ``files``: the sha256 of every other file.
- ``arrays.safetensors``: every numeric array, and every large string table (a vocabulary,
  as UTF-8 bytes and offsets), by key. An array held by several parts is stored once.

Loading builds: for each entry the loader looks its kind up in :data:`KINDS` (classes this
project and scikit-learn define, and those registered with ``register_step`` /
``register_classifier``), creates the object from checked parameters, then sets exactly the
attributes that the kind declares (``fitted_state``, see :mod:`features.state`), each checked
against its declared type. No name in the file reaches ``importlib``, ``getattr`` or a cache
folder; there is no pickle in this module. A file that does not fit raises
:class:`ModelFileError`, which names the part and the problem.

The manifest's own sha256 is the model's fingerprint: training records it on the run, and a
model fetched from the store must match it (see :mod:`train.artifact`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import safetensors.numpy
import sklearn
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import BernoulliNB, ComplementNB, MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from features.pipeline import FEATURE_STEPS
from features.state import (
    Array,
    Bool,
    Child,
    ChildMap,
    Children,
    Choice,
    DType,
    Field,
    Float,
    Int,
    Json,
    Labels,
    NamedChildren,
    Pair,
    StateError,
    StrIndex,
    Strings,
    Text,
    check_array,
)
from features.text import NgramAnalyzer, Tokenizer
from train.classifiers import CLASSIFIERS
from train.errors import ModelError

FORMAT = "stance-model/2"
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
# Arrays files at least this large are hashed on a second thread while the model is built.
PARALLEL_HASH_BYTES = 1 << 20
# Parts nested deeper than this are refused: a real model is under 12 deep (a cascade of
# per-target models with a prior), and a file must not exhaust Python's stack.
MAX_DEPTH = 40
# What a manifest may weigh: the largest real one (a cascade) is under 1 MB; string tables go
# to the arrays file.
MAX_MANIFEST_BYTES = 64 << 20


class ModelFileError(ModelError):
    """A model file that is not a stance model of this format, or does not fit its kinds."""


class PickleModelError(ModelFileError):
    """A model file of the pickle format that earlier versions wrote."""


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """How the loader builds one class.

    ``params``: for a scikit-learn estimator, the constructor parameters that are parts rather
    than plain values (every other parameter must be a plain value: a number, string, bool,
    None, a list of them or a dict of them); for another class, every constructor argument.
    ``skipped``: estimator parameters that are not saved and must not appear (a joblib cache
    folder, a process count, folds used only in ``fit``). ``state``: the attributes ``fit``
    leaves, by type. ``derived``: attributes the object rebuilds itself (caches, bound
    functions), never saved. ``check``: consistency of the state across attributes, raising
    ``ValueError``.
    """

    cls: type
    state: dict
    params: dict = field(default_factory=dict)
    skipped: frozenset = frozenset()
    derived: frozenset = frozenset()
    check: object = None

    @property
    def is_estimator(self) -> bool:
        return issubclass(self.cls, BaseEstimator)


def _check_linear(model) -> None:
    rows, columns = model.coef_.shape
    if columns != model.n_features_in_:
        raise ValueError(f"coef_ has {columns} columns for {model.n_features_in_} features")
    if rows not in (1, len(model.classes_)) or model.intercept_.shape != (rows,):
        raise ValueError(
            f"coef_ of shape {list(model.coef_.shape)} and intercept_ of shape "
            f"{list(model.intercept_.shape)} do not fit {len(model.classes_)} classes"
        )


def _check_naive_bayes(model) -> None:
    shape = (len(model.classes_), model.n_features_in_)
    for name in ("feature_count_", "feature_log_prob_"):
        if getattr(model, name).shape != shape:
            raise ValueError(f"{name} has shape {list(getattr(model, name).shape)}, not {shape}")
    for name in ("class_count_", "class_log_prior_"):
        if getattr(model, name).shape != shape[:1]:
            raise ValueError(f"{name} has {len(getattr(model, name))} entries, not {shape[0]}")


def _check_idf(model) -> None:
    if hasattr(model, "idf_") and model.idf_.shape != (model.n_features_in_,):
        raise ValueError(f"idf_ has {len(model.idf_)} entries for {model.n_features_in_} features")


def _check_isotonic(model) -> None:
    if model.X_thresholds_.shape != model.y_thresholds_.shape or not len(model.X_thresholds_):
        raise ValueError("X_thresholds_ and y_thresholds_ must be of one non-zero length")


_NAIVE_BAYES_STATE = {
    "n_features_in_": Int(),
    "classes_": Labels(),
    "class_count_": Array("float64", 1),
    "feature_count_": Array("float64", 2),
    "feature_log_prob_": Array("float64", 2),
    "class_log_prior_": Array("float64", 1),
}
_LINEAR_STATE = {
    "n_features_in_": Int(),
    "classes_": Labels(),
    "coef_": Array("float64", 2),
    "intercept_": Array("float64", 1),
}
_VECTORIZER_STATE = {"vocabulary_": StrIndex(), "fixed_vocabulary_": Bool()}

# scikit-learn's classes that stance models are made of, with what each keeps.
_SKLEARN_KINDS = {
    "Pipeline": Kind(Pipeline, {}, {"steps": NamedChildren()}, frozenset({"memory"})),
    "FeatureUnion": Kind(
        FeatureUnion, {}, {"transformer_list": NamedChildren()}, frozenset({"n_jobs"})
    ),
    "LogisticRegression": Kind(
        LogisticRegression,
        {**_LINEAR_STATE, "n_iter_": Array("int32", 1)},
        skipped=frozenset({"n_jobs"}),
        check=_check_linear,
    ),
    "LinearSVC": Kind(LinearSVC, {**_LINEAR_STATE, "n_iter_": Int()}, check=_check_linear),
    "CalibratedClassifierCV": Kind(
        CalibratedClassifierCV,
        {
            "classes_": Labels(),
            "n_features_in_": Int(),
            "calibrated_classifiers_": Children(("_CalibratedClassifier",)),
        },
        {"estimator": Child(("LinearSVC",))},
        frozenset({"cv", "n_jobs"}),
    ),
    "_CalibratedClassifier": Kind(
        _CalibratedClassifier,
        {},
        {
            "estimator": Child(("LinearSVC",)),
            "calibrators": Children(("_SigmoidCalibration", "IsotonicRegression")),
            "classes": Labels(),
            "method": Choice(values=("sigmoid", "isotonic")),
        },
    ),
    "_SigmoidCalibration": Kind(
        _SigmoidCalibration, {"a_": Float(numpy=True), "b_": Float(numpy=True)}
    ),
    "IsotonicRegression": Kind(
        IsotonicRegression,
        {
            "increasing_": Bool(),
            "X_min_": Float(numpy=True),
            "X_max_": Float(numpy=True),
            "X_thresholds_": Array("float64", 1),
            "y_thresholds_": Array("float64", 1),
        },
        derived=frozenset({"f_"}),
        check=_check_isotonic,
    ),
    "ComplementNB": Kind(
        ComplementNB,
        {**_NAIVE_BAYES_STATE, "feature_all_": Array("float64", 1)},
        check=_check_naive_bayes,
    ),
    "MultinomialNB": Kind(MultinomialNB, _NAIVE_BAYES_STATE, check=_check_naive_bayes),
    "BernoulliNB": Kind(BernoulliNB, _NAIVE_BAYES_STATE, check=_check_naive_bayes),
    "CountVectorizer": Kind(
        CountVectorizer,
        _VECTORIZER_STATE,
        {"analyzer": Child(("NgramAnalyzer",)), "dtype": DType()},
    ),
    "TfidfTransformer": Kind(
        TfidfTransformer,
        {"n_features_in_": Int(), "idf_": Array("float64", 1, optional=True)},
        check=_check_idf,
    ),
    "TfidfVectorizer": Kind(
        TfidfVectorizer,
        {**_VECTORIZER_STATE, "_tfidf": Child(("TfidfTransformer",))},
        {"analyzer": Child(("Tokenizer",)), "dtype": DType()},
    ),
}

# This project's plain classes inside steps: every constructor argument is declared.
_PART_KINDS = {
    "Tokenizer": Kind(
        Tokenizer,
        {},
        {
            "kind": Text(),
            "lowercase": Bool(),
            "negation": Bool(),
            "stemmer": Text(optional=True),
            "normalize_urls": Bool(),
            "split_hashtags": Bool(),
        },
        derived=frozenset({"_split", "_stem", "_cache"}),
    ),
    "NgramAnalyzer": Kind(
        NgramAnalyzer,
        {},
        {
            "tokenizer": Child(("Tokenizer",)),
            "ngram_range": Pair(fields=(Int(), Int())),
            "prefix_target": Bool(),
            "target_cues": Strings("frozenset", optional=True),
        },
    ),
}

# Classes registered by train.models (the model, the cascade, the per-target router) and by
# anyone with register_kind.
_REGISTERED: dict[str, Kind] = {}


def register_kind(cls: type, *, params: dict | None = None, skipped=(), derived=(), check=None):
    """Let the loader build ``cls``: a class of this project's that is neither a feature step
    nor a classifier (those are found through their registries). Its ``fitted_state`` says what
    it keeps; ``params`` declares the constructor parameters that are parts."""
    _REGISTERED[cls.__name__] = Kind(
        cls,
        dict(getattr(cls, "fitted_state", {})),
        dict(params or getattr(cls, "part_params", {})),
        frozenset(skipped),
        frozenset(derived) | frozenset(getattr(cls, "derived_state", ())),
        check or getattr(cls, "check_state", None),
    )


def kinds() -> dict[str, Kind]:
    """Every kind the loader can build, by the name the file gives it.

    Feature steps and classifiers come from their registries as they are now, so a step added
    with ``register_step`` loads (and saves) once it declares ``fitted_state``.
    """
    found = {**_SKLEARN_KINDS, **_PART_KINDS, **_REGISTERED}
    for cls in (*FEATURE_STEPS.values(), *CLASSIFIERS.values()):
        name = cls.__name__
        if name in _SKLEARN_KINDS:
            continue  # scikit-learn's own classifiers, declared above
        if name in found and found[name].cls is not cls:
            raise ModelFileError(
                f"Two registered classes are both named {name} ({found[name].cls.__module__} and "
                f"{cls.__module__}); a model file names classes by name, so rename one."
            )
        found[name] = Kind(
            cls,
            dict(getattr(cls, "fitted_state", None) or {}),
            dict(getattr(cls, "part_params", {})),
            frozenset(getattr(cls, "skipped_params", ())),
            frozenset(getattr(cls, "derived_state", ())),
            getattr(cls, "check_state", None),
        )
    return found


# --------------------------------------------------------------------------- writing


def _plain(value, where: str):
    """A constructor parameter as JSON: numbers, strings, bools, None, lists and dicts of them."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(item, where) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {"dict": {key: _plain(item, f"{where}.{key}") for key, item in value.items()}}
    raise ModelFileError(
        f"{where} is a {type(value).__name__}, which a model file cannot hold as a parameter "
        "(numbers, strings, booleans, None, and lists or dicts of them)."
    )


class _Writer:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self._keys: dict[int, str] = {}
        self._held: list = []  # keeps saved arrays alive, so that no id is reused mid-save
        self._kinds = kinds()  # once per save, not once per part

    def array(self, value: np.ndarray) -> str:
        key = self._keys.get(id(value))
        if key is None:
            key = self._keys[id(value)] = f"a{len(self._keys)}"
            self.arrays[key] = np.ascontiguousarray(value)
            self._held.append(value)
        return key

    def strings(self, values: list[str]) -> dict:
        table = pa.array(values, pa.large_string())
        _, offsets, data = table.buffers()
        key = f"s{len(self._keys)}"
        self._keys[id(table)] = key
        self._held.append(table)
        self.arrays[f"{key}.offsets"] = np.frombuffer(offsets, np.int64)[: len(values) + 1].copy()
        self.arrays[f"{key}.utf8"] = np.frombuffer(data or b"", np.uint8).copy()
        return {"strings": key, "count": len(values)}

    def node(self, obj, where: str, depth: int = 0) -> dict:
        if depth > MAX_DEPTH:
            raise ModelFileError(f"{where}: the model is nested deeper than {MAX_DEPTH} parts.")
        name = type(obj).__name__
        kind = self._kinds.get(name)
        if kind is None or kind.cls is not type(obj):
            raise ModelFileError(
                f"{where} is a {type(obj).__module__}.{name}, which the model format does not "
                "know. Register feature steps with register_step and classifiers with "
                "register_classifier, each with a fitted_state attribute (features/state.py)."
            )
        entry = {"kind": name, "params": self._params(obj, kind, where, depth)}
        state = self._state(obj, kind, where, depth)
        if state is not None:
            entry["state"] = state
        return entry

    def _params(self, obj, kind: Kind, where: str, depth: int) -> dict:
        if kind.is_estimator:
            values = obj.get_params(deep=False)
            names = [name for name in values if name not in kind.skipped]
        else:
            values = {name: getattr(obj, name) for name in kind.params}
            names = list(kind.params)
        out = {}
        for name in names:
            declared = kind.params.get(name)
            spot = f"{where}.{name}"
            as_part = declared is not None and not (
                isinstance(declared, Child) and not hasattr(values[name], "__dict__")
            )
            out[name] = (
                self.value(values[name], declared, spot, depth)
                if as_part
                else _plain(values[name], spot)
            )
        return out

    def _state(self, obj, kind: Kind, where: str, depth: int) -> dict | None:
        held = vars(obj)
        params = obj.get_params(deep=False) if kind.is_estimator else kind.params
        fitted = [
            name
            for name in held
            if name not in kind.derived and name not in params and name != "_sklearn_output_config"
        ]
        undeclared = [name for name in fitted if name not in kind.state]
        if undeclared:
            raise ModelFileError(
                f"{where} ({kind.cls.__qualname__}) holds {', '.join(undeclared)}, which its "
                "fitted_state does not declare, so it cannot be saved as data. Add them to "
                f"{kind.cls.__qualname__}.fitted_state (types in features/state.py)."
            )
        if not fitted:
            return {} if not kind.state or all(f.optional for f in kind.state.values()) else None
        out = {}
        for name, declared in kind.state.items():
            if name not in held:
                if declared.optional:
                    continue
                raise ModelFileError(f"{where} is partly fitted: {name} is missing.")
            out[name] = self.value(held[name], declared, f"{where}.{name}", depth)
        return out

    def value(self, value, declared: Field, where: str, depth: int):
        if value is None and declared.optional:
            return None
        match declared:
            case Int():
                return int(value)
            case Float():
                return float(value)
            case Bool():
                return bool(value)
            case Text() | Choice():
                return str(value)
            case DType():
                return np.dtype(value).name
            case Array():
                return {"array": self.array(check_array(value, declared, where))}
            case Labels():
                labels = np.asarray(value)
                if labels.dtype.kind in "iu":
                    return {"array": self.array(check_array(labels, Array("int64", 1), where))}
                return {
                    "labels": [str(label) for label in labels.tolist()],
                    "as": "object" if labels.dtype == object else "str",
                }
            case Strings():
                items = sorted(value) if declared.container == "frozenset" else list(value)
                return {"list": [str(item) for item in items]}
            case StrIndex():
                ordered = sorted(value, key=value.__getitem__)
                if [value[key] for key in ordered] != list(range(len(ordered))):
                    raise ModelFileError(f"{where}: the indices are not 0 .. n-1.")
                return self.strings(ordered)
            case Child():
                return self.node(value, where, depth + 1)
            case Children():
                return [self.node(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
            case ChildMap():
                return {
                    "map": [
                        [str(key), self.node(item, f"{where}[{key!r}]", depth + 1)]
                        for key, item in value.items()
                    ]
                }
            case NamedChildren():
                return [
                    [str(name), self.node(item, f"{where}.{name}", depth + 1)]
                    for name, item in value
                ]
            case Pair():
                if len(value) != len(declared.fields):
                    raise ModelFileError(f"{where}: expected {len(declared.fields)} values.")
                return [
                    self.value(item, item_field, f"{where}[{i}]", depth)
                    for i, (item, item_field) in enumerate(zip(value, declared.fields))
                ]
            case Json():
                return _json_value(value, where)
        raise ModelFileError(f"{where}: no way to save a {type(declared).__name__}.")


def _json_value(value, where: str):
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where} is not plain data: {error}.") from None


# The dtypes a model's arrays are written in (safetensors' names); anything else is refused.
_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}


def _array_views(buffer: bytearray) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file, as views of ``buffer``, refused with StateError unless
    the header is exactly what the format allows.

    Written here rather than calling ``safetensors.numpy.load``, which copies every array
    out of the bytes into read-only ones (then copied again to be writable): on the 20 MB
    SemEval-fast model the library's route took 16 ms of a 53 ms load, the views none
    (benchmarks/model_format.py). The checks are the format's: a JSON header of at most
    100 MB naming, for each array, a known dtype, a shape of non-negative integers and
    byte offsets that match it; the arrays tile the data section with no gap or overlap.
    """
    if len(buffer) < 8:
        raise StateError("shorter than a safetensors header")
    size = int.from_bytes(buffer[:8], "little")
    if size > min(len(buffer) - 8, 100_000_000):
        raise StateError(f"the header claims {size} bytes, more than the file holds")
    try:
        header = json.loads(bytes(buffer[8 : 8 + size]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise StateError(f"the header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise StateError("the header is not a JSON object")
    header.pop("__metadata__", None)
    start, data_size = 8 + size, len(buffer) - 8 - size
    entries = []
    for name, entry in header.items():
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
            raise StateError(f"array {name[:80]!r}: expected dtype, shape and data_offsets")
        dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        shape, offsets = entry["shape"], entry["data_offsets"]
        if dtype is None:
            raise StateError(f"array {name[:80]!r}: dtype {_shown(entry['dtype'])} is refused")
        if not (isinstance(shape, list) and all(type(n) is int and 0 <= n < 2**40 for n in shape)):
            raise StateError(f"array {name[:80]!r}: the shape is not a list of sizes")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(n) is int for n in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise StateError(f"array {name[:80]!r}: its byte offsets lie outside the file")
        count = int(np.prod(shape, dtype=object))
        if count * dtype.itemsize != offsets[1] - offsets[0]:
            raise StateError(f"array {name[:80]!r}: its shape does not match its bytes")
        entries.append((offsets[0], offsets[1], name, dtype, shape, count))
    entries.sort()
    end = 0
    for begin, stop, name, *_ in entries:
        if begin != end:
            raise StateError(f"array {name[:80]!r}: the arrays overlap or leave a gap")
        end = stop
    if end != data_size:
        raise StateError("bytes after the last array")
    views = {}
    for begin, _, name, dtype, shape, count in entries:
        view = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + begin)
        # An array that does not start on a multiple of its item size is copied: compiled
        # code (scipy's sparse products, Cython) may expect aligned memory.
        views[name] = (view if view.flags.aligned else view.copy()).reshape(shape)
    return views


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(model, folder: str | Path) -> str:
    """Write ``model`` as a model folder; returns the sha256 of its manifest (its fingerprint).

    The files are written under temporary names and renamed into place, the manifest last, so a
    folder with a manifest is always whole.
    """
    writer = _Writer()
    tree = writer.node(model, "the model")
    arrays = safetensors.numpy.save(writer.arrays)
    manifest = {"format": FORMAT, "model": tree, "files": {ARRAYS: _sha256(arrays)}}
    text = json.dumps(manifest, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    data = text.encode("utf-8")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in ((ARRAYS, arrays), (MANIFEST, data)):
        temporary = folder / f".{name}.{os.getpid()}.tmp"
        temporary.write_bytes(content)
        os.replace(temporary, folder / name)
    return _sha256(data)


# --------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self._kinds = kinds()

    def array(self, key, where: str) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise StateError(f"{where}: names an array the file does not hold ({key!r})")
        return self.arrays[key]

    def strings(self, data, where: str) -> list[str]:
        if not (isinstance(data, dict) and set(data) == {"strings", "count"}):
            raise StateError(f"{where}: expected a string table")
        key, count = data["strings"], data["count"]
        offsets = check_array(self.arrays.get(f"{key}.offsets"), Array("int64", 1), where)
        utf8 = check_array(self.arrays.get(f"{key}.utf8"), Array("uint8", 1), where)
        if not isinstance(count, int) or count < 0 or len(offsets) != count + 1:
            raise StateError(f"{where}: the string table's count does not match its offsets")
        table = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(utf8))
        try:
            table.validate(full=True)  # offsets in order and in bounds, text valid UTF-8
        except pa.ArrowInvalid as error:
            raise StateError(f"{where}: the string table is corrupt ({error})") from None
        return table.to_pylist()

    def node(self, data, where: str, allowed: tuple = (), depth: int = 0):
        if depth > MAX_DEPTH:
            raise StateError(f"{where}: parts nested deeper than {MAX_DEPTH}")
        if not isinstance(data, dict) or not set(data) <= {"kind", "params", "state"}:
            raise StateError(f"{where}: expected a part with kind, params and state")
        name = data.get("kind")
        kind = self._kinds.get(name) if isinstance(name, str) else None
        if kind is None:
            raise StateError(
                f"{where}: unknown kind {str(name)[:80]!r}: not a feature step, classifier or "
                "part that this version of stance builds"
            )
        if allowed and name not in allowed:
            raise StateError(f"{where}: a {name} cannot stand here (expected {', '.join(allowed)})")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise StateError(f"{where}: params must be an object")
        obj = self._build(kind, name, params, where, depth)
        if "state" in data:
            self._restore(obj, kind, data["state"], where, depth)
        return obj

    def _build(self, kind: Kind, name: str, params: dict, where: str, depth: int):
        if kind.is_estimator:
            accepted = _param_names(kind.cls) - kind.skipped
        else:
            accepted = set(kind.params)
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise StateError(f"{where}: {name} takes no parameter {str(unknown[0])[:80]!r}")
        values = {}
        for key, value in params.items():
            declared = kind.params.get(key)
            spot = f"{where}.{key}"
            if declared is not None and not (isinstance(declared, Child) and _is_plain(value)):
                values[key] = self.value(value, declared, spot, depth)
            else:
                values[key] = _from_plain(value, spot)
        if not kind.is_estimator and set(values) != accepted:
            missing = sorted(accepted - set(values))
            raise StateError(f"{where}: {name} needs {', '.join(missing)}")
        try:
            obj = kind.cls(**values)
            if getattr(kind.cls, "_parameter_constraints", None) is not None:
                obj._validate_params()
            if callable(getattr(obj, "_check_params", None)):
                obj._check_params()
        except (TypeError, ValueError, ModelError) as error:
            raise StateError(f"{where}: {name} refuses its parameters: {error}") from None
        return obj

    def _restore(self, obj, kind: Kind, state, where: str, depth: int) -> None:
        if not isinstance(state, dict):
            raise StateError(f"{where}: state must be an object")
        extra = sorted(set(state) - set(kind.state))
        if extra:
            raise StateError(f"{where}: {kind.cls.__qualname__} keeps no {str(extra[0])[:80]!r}")
        missing = [k for k, f in kind.state.items() if k not in state and not f.optional]
        if missing:
            raise StateError(f"{where}: the state lacks {', '.join(missing)}")
        values = {
            key: self.value(value, kind.state[key], f"{where}.{key}", depth)
            for key, value in state.items()
        }
        if isinstance(obj, BaseEstimator) and type(obj).__module__.startswith("sklearn."):
            # scikit-learn's own way to take a state: IsotonicRegression rebuilds its
            # interpolator from the thresholds there.
            obj.__setstate__({**vars(obj), **values, "_sklearn_version": sklearn.__version__})
        else:
            for key, value in values.items():
                setattr(obj, key, value)
        if kind.check is not None:
            try:
                kind.check(obj)
            except (ValueError, TypeError, AttributeError) as error:
                raise StateError(f"{where}: {error}") from None

    def value(self, data, declared: Field, where: str, depth: int):
        if data is None:
            if declared.optional:
                return None
            raise StateError(f"{where}: missing (null)")
        match declared:
            case Int():
                if type(data) is not int:
                    raise StateError(f"{where}: expected an integer, found {_shown(data)}")
                return data
            case Float():
                if type(data) not in (int, float):
                    raise StateError(f"{where}: expected a number, found {_shown(data)}")
                return np.float64(data) if declared.numpy else float(data)
            case Bool():
                if type(data) is not bool:
                    raise StateError(f"{where}: expected true or false, found {_shown(data)}")
                return data
            case Text():
                if type(data) is not str:
                    raise StateError(f"{where}: expected a string, found {_shown(data)}")
                return data
            case Choice():
                if data not in declared.values:
                    raise StateError(
                        f"{where}: expected one of {list(declared.values)}, found {_shown(data)}"
                    )
                return data
            case DType():
                if data not in declared.values:
                    raise StateError(f"{where}: expected a dtype of {list(declared.values)}")
                return np.dtype(data).type
            case Array():
                if not isinstance(data, dict) or set(data) != {"array"}:
                    raise StateError(f"{where}: expected an array reference")
                return check_array(self.array(data["array"], where), declared, where)
            case Labels():
                return self._labels(data, where)
            case Strings():
                items = self._string_list(data, where)
                return {
                    "tuple": tuple,
                    "list": list,
                    "frozenset": frozenset,
                    "array": lambda values: np.asarray(values, dtype=object),
                }[declared.container](items)
            case StrIndex():
                table = self.strings(data, where)
                index = dict(zip(table, range(len(table))))
                if len(index) != len(table):
                    raise StateError(f"{where}: the vocabulary repeats an entry")
                return index
            case Child():
                return self.node(data, where, declared.kinds, depth + 1)
            case Children():
                if not isinstance(data, list):
                    raise StateError(f"{where}: expected a list of parts")
                return [
                    self.node(item, f"{where}[{i}]", declared.kinds, depth + 1)
                    for i, item in enumerate(data)
                ]
            case ChildMap():
                pairs = data.get("map") if isinstance(data, dict) else None
                if not isinstance(pairs, list) or not all(_is_pair(p) for p in pairs):
                    raise StateError(f"{where}: expected a map of parts")
                return {
                    key: self.node(item, f"{where}[{key!r}]", declared.kinds, depth + 1)
                    for key, item in pairs
                }
            case NamedChildren():
                if not isinstance(data, list) or not all(_is_pair(p) for p in data):
                    raise StateError(f"{where}: expected a list of [name, part] pairs")
                return [
                    (name, self.node(item, f"{where}.{name}", declared.kinds, depth + 1))
                    for name, item in data
                ]
            case Pair():
                if not isinstance(data, list) or len(data) != len(declared.fields):
                    raise StateError(f"{where}: expected {len(declared.fields)} values")
                return tuple(
                    self.value(item, item_field, f"{where}[{i}]", depth)
                    for i, (item, item_field) in enumerate(zip(data, declared.fields))
                )
            case Json():
                if declared.mapping and not isinstance(data, dict):
                    raise StateError(f"{where}: expected a JSON object")
                return data
        raise StateError(f"{where}: cannot read a {type(declared).__name__}")

    def _labels(self, data, where: str) -> np.ndarray:
        if isinstance(data, dict) and set(data) == {"array"}:
            return check_array(self.array(data["array"], where), Array("int64", 1), where)
        if not (isinstance(data, dict) and set(data) == {"labels", "as"}):
            raise StateError(f"{where}: expected class labels")
        labels = data["labels"]
        if not isinstance(labels, list) or not all(type(x) is str for x in labels):
            raise StateError(f"{where}: class labels must be strings")
        if data["as"] == "object":
            return np.asarray(labels, dtype=object)
        if data["as"] == "str":
            return np.asarray(labels, dtype=str)
        raise StateError(f"{where}: labels are kept as 'object' or 'str'")

    def _string_list(self, data, where: str) -> list[str]:
        items = data.get("list") if isinstance(data, dict) and set(data) == {"list"} else None
        if not isinstance(items, list) or not all(type(x) is str for x in items):
            raise StateError(f"{where}: expected a list of strings")
        return items


@functools.cache
def _param_names(cls: type) -> frozenset[str]:
    """An estimator class's parameters, read once per process: inspect.signature, which
    scikit-learn calls each time, was a third of loading a small model."""
    return frozenset(cls._get_param_names())


def _is_pair(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _is_plain(value) -> bool:
    return not (isinstance(value, dict) and "kind" in value)


def _shown(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _from_plain(value, where: str):
    """A plain parameter from JSON: lists become tuples (``ngram_range``), ``{"dict": ...}`` a
    dict of plain values; nothing else is accepted."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return tuple(_from_plain(item, where) for item in value)
    if isinstance(value, dict) and set(value) == {"dict"} and isinstance(value["dict"], dict):
        return {str(key): _from_plain(item, where) for key, item in value["dict"].items()}
    raise StateError(f"{where}: a parameter must be a plain value, found {_shown(value)}")


def is_pickle(path: Path) -> bool:
    """Whether ``path`` is a pickle file, as earlier versions wrote models (protocol 2 and up
    start with 0x80 and the protocol number)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def pickle_refusal(named: str) -> str:
    return (
        f"{named} is a model file in the pickle format of earlier versions, which can run code "
        "when read, so it is not loaded. If you trust where it came from, convert it once: "
        f"stance convert {named} NEW_MODEL_FOLDER --trust-pickle"
    )


def manifest_path(path: str | Path, named: str | None = None) -> Path:
    """The manifest of the model at ``path``: a model folder, its manifest, or a logged MLflow
    model that holds one under ``artifacts/``."""
    path = Path(path)
    named = named or str(path)
    if path.is_file():
        if path.name == MANIFEST:
            return path
        if is_pickle(path):
            raise PickleModelError(pickle_refusal(named))
        raise ModelFileError(
            f"{named} is not a stance model: expected a model folder (with {MANIFEST}), as "
            "`stance train` and `stance cascade` write."
        )
    for candidate in (path, path / "artifacts" / "model"):
        if (candidate / MANIFEST).is_file():
            return candidate / MANIFEST
    for old in (path / "model.pkl", path / "artifacts" / "model.pkl"):
        if old.is_file():
            raise PickleModelError(pickle_refusal(named))
    raise ModelFileError(
        f"{named} is not a stance model: no {MANIFEST} in {path}. Models written by `stance "
        "train` and `stance cascade` have one."
    )


def manifest_sha256(path: str | Path) -> str:
    return _sha256(manifest_path(path).read_bytes())


def load(path: str | Path, expected_sha256: str | None = None, source: str | None = None):
    """Build the model saved in the folder at ``path``.

    With ``expected_sha256``, a manifest whose sha256 differs (the model's run recorded
    another) is refused before anything is built; the arrays file is always checked against
    the manifest. ``source`` names the model in errors (a ``runs:/`` URI rather than the
    temporary folder it was fetched to). Every problem raises :class:`ModelFileError` with one
    line saying what was expected and what was found.
    """
    named = source or str(path)
    manifest_file = manifest_path(path, named)
    try:
        if manifest_file.stat().st_size > MAX_MANIFEST_BYTES:
            raise ModelFileError(f"{named}: {MANIFEST} is larger than any model's manifest.")
        data = manifest_file.read_bytes()
        if expected_sha256 is not None and (found := _sha256(data)) != expected_sha256:
            raise ModelFileError(
                f"{named}: the model's manifest has sha256 {found}, but its run recorded "
                f"{expected_sha256} when it was logged. The model was changed after training; "
                "do not use it. Retrain, or load a model that matches its run."
            )
        manifest = _parse_manifest(data, named)
        buffer = _read_all(manifest_file.parent / ARRAYS)
    except OSError as error:
        raise ModelFileError(f"Cannot read the model {named}: {error.strerror or error}.") from None
    # The arrays file is hashed on a second thread while the model is built from it (hashlib
    # lets go of the GIL): building treats every byte as hostile anyway, and nothing built is
    # returned before the hash matches. On two cores this hides the hash, a fifth of a load.
    hasher = hashlib.sha256()
    hashing = threading.Thread(target=hasher.update, args=(buffer,))
    if len(buffer) >= PARALLEL_HASH_BYTES:
        hashing.start()
    else:  # a thread costs more than it hides
        hashing.run()
    model = problem = None
    try:
        try:
            arrays = _array_views(buffer)
        except StateError as error:
            problem = f"{named}: {ARRAYS} is not a valid safetensors file ({error})."
        else:
            model = _Reader(arrays).node(manifest["model"], "model")
    except StateError as error:
        problem = f"{named} does not fit its format: {error}."
    except RecursionError:
        problem = f"{named}: its parts are nested too deeply."
    finally:
        if hashing.ident is not None:  # started
            hashing.join()
    if hasher.hexdigest() != manifest["files"][ARRAYS]:
        raise ModelFileError(
            f"{named}: {ARRAYS} does not match the sha256 its manifest records: the file was "
            "changed or damaged after the model was saved. Do not use it; save the model again."
        )
    if problem is not None:
        raise ModelFileError(problem)
    return model


def _read_all(path: Path) -> bytearray:
    """The whole file in one writable buffer, which the arrays are views of."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        buffer = bytearray(size)
        if file.readinto(buffer) != size or file.read(1):
            raise OSError(f"{path} changed size while it was read")
    return buffer


def _parse_manifest(data: bytes, named: str) -> dict:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelFileError(f"{named}: {MANIFEST} is not valid JSON ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ModelFileError(
            f"{named}: expected a model of format {FORMAT!r}, found {_shown(found)}. Models are "
            "written by `stance train` and `stance cascade`; convert older ones with `stance "
            "convert`."
        )
    files = manifest.get("files")
    if not (isinstance(files, dict) and isinstance(files.get(ARRAYS), str)):
        raise ModelFileError(f"{named}: {MANIFEST} lists no sha256 for {ARRAYS}.")
    if set(manifest) != {"format", "model", "files"}:
        extra = sorted(set(manifest) - {"format", "model", "files"})
        raise ModelFileError(f"{named}: {MANIFEST} holds unknown entries: {extra[:3]}.")
    return manifest
