"""Reading the pickle model files of earlier versions, for ``stance convert --trust-pickle`` only.

Models used to be pickles read through an allow-list of types. An allow-list over pickle
cannot make a file safe (every admitted class is a gadget whose attributes the file sets),
so no command loads a pickle any more: ``stance convert OLD NEW --trust-pickle`` reads one
through the old allow-list, once, on the user's word that they trust where it came from, and
writes the data-only format of :mod:`train.modelfile`. Nothing else imports this module.
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import BaseCrossValidator, BaseShuffleSplit

from features.pipeline import FEATURE_STEPS
from train import modelfile
from train.classifiers import CLASSIFIERS
from train.errors import ModelError
from train.models import Cascade, StanceModel


class UntrustedModelError(ModelError):
    """The model file names a type or function outside the allow-list."""


# (module, name) pairs a stance model's pickle may name besides estimator classes:
# the containers, array and sparse-matrix rebuilders that numpy, scipy and Python's
# own copyreg use, and the plain data types of this project and of NLTK's tokenizers.
ALLOWED_GLOBALS = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "object"),
        ("copyreg", "_reconstructor"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random.mtrand", "RandomState"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("scipy.sparse._csc", "csc_matrix"),
        ("scipy.sparse._coo", "coo_matrix"),
        ("scipy.sparse._dia", "dia_matrix"),
        ("scipy.sparse._csr", "csr_array"),
        ("scipy.sparse._csc", "csc_array"),
        ("sklearn.calibration", "_CalibratedClassifier"),
        ("train.models", "StanceModel"),
        ("train.models", "Cascade"),
        ("features.text", "Tokenizer"),
        ("features.text", "NgramAnalyzer"),
    }
)
# Modules whose estimator classes (subclasses of scikit-learn's BaseEstimator) and
# fold splitters (a calibrated SVM keeps its folds) are trusted: their constructors
# only store parameters, by scikit-learn's contract.
ESTIMATOR_MODULES = ("sklearn.", "features.", "train.")
# Numpy scalar types (numpy.float64, numpy.int64, ...) appear as dtype arguments.
NUMPY_SCALAR_MODULES = ("numpy", "numpy._core.multiarray", "numpy.core.multiarray")


def _registered() -> dict[tuple[str, str], type]:
    """Feature steps and classifiers added with ``register_step`` / ``register_classifier``:
    the user who registered them trusts them, wherever their module lives."""
    return {
        (cls.__module__, cls.__qualname__): cls
        for cls in (*FEATURE_STEPS.values(), *CLASSIFIERS.values())
    }


def _trusted(module: str, name: str):
    """The object a trusted (module, name) pair names, or None."""
    if "." in name or name.startswith("__") and (module, name) not in ALLOWED_GLOBALS:
        return None  # dotted names reach attributes of attributes; dunders reach internals
    if (module, name) in ALLOWED_GLOBALS:
        return getattr(importlib.import_module(module), name)
    if (module, name) in (registered := _registered()):
        return registered[(module, name)]
    if module.startswith(ESTIMATOR_MODULES):
        found = getattr(importlib.import_module(module), name, None)
        if isinstance(found, type) and issubclass(
            found, (BaseEstimator, BaseCrossValidator, BaseShuffleSplit)
        ):
            return found
        return None
    if module in NUMPY_SCALAR_MODULES:
        found = getattr(np, name, None)
        if isinstance(found, type) and issubclass(found, np.generic):
            return found
    return None


class _AllowListUnpickler(pickle.Unpickler):
    """pickle's C unpickler, with every global the file names checked first."""

    def find_class(self, module, name):
        found = _trusted(module, name)
        if found is None:
            raise UntrustedModelError(f"{module}.{name}")
        return found


def convert(source: str, target: str | Path, trust_pickle: bool) -> str:
    """Read the pickle model ``source`` (a file, an old model folder, or a ``runs:/`` /
    ``models:/`` URI of a run that logged one) and write it as a model folder at ``target``;
    returns the new model's fingerprint. Without ``trust_pickle`` nothing is read."""

    if not trust_pickle:
        raise ModelError(
            f"{source} would be read as a pickle, which runs whatever code the file names; "
            "convert it only if you trust where it came from, by adding --trust-pickle."
        )
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelError(f"{target} exists; name a new folder for the converted model.")
    if source.startswith(("runs:/", "models:/")):
        # MLflow (2 s) only for a model in the store.
        from train import store

        with store.fetched_model(source) as fetched:
            model = load(find(fetched.path, source), fetched.expected_sha256, source)
    else:
        model = load(find(Path(source), source), None, source)
    if not isinstance(model, StanceModel | Cascade):
        raise ModelError(f"{source} holds a {type(model).__name__}, not a stance model.")
    return modelfile.save(model, target)


def find(path: Path, uri: str) -> Path:
    """``model.pkl`` itself, or where a model folder (a logged MLflow model) keeps it."""
    if path.is_file():
        return path
    for candidate in (path / "model.pkl", path / "artifacts" / "model.pkl"):
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"{uri} is not a stance model: no model.pkl in {path}. Models logged by `stance train` "
        "have one."
    )


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def save(model, path: str | Path) -> str:
    """Write ``model`` to ``path``; returns the file's sha256."""
    # Plain pickle rather than joblib: joblib.load unpickles in pure Python,
    # which takes seconds for an n-gram vocabulary; pickle's C loader does not.
    data = pickle.dumps(model, protocol=5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest(data)


def load(path: str | Path, expected_sha256: str | None = None, source: str | None = None):
    """The object in the model file at ``path``, read through the allow-list.

    With ``expected_sha256``, a file whose hash differs is refused before it is
    unpickled. ``source`` names the model in errors (a ``runs:/`` URI rather
    than the temporary folder it was downloaded to). The file is unpickled straight
    from disk, as ``pickle.load`` would: reading it into memory first cost as much
    again on a 14 MB model.
    """
    path = Path(path)
    named = source or str(path)
    try:
        if expected_sha256 is not None and (found := file_sha256(path)) != expected_sha256:
            raise ModelError(
                f"{named}: the model file's sha256 is {found}, but its run recorded "
                f"{expected_sha256} when it was logged. "
                "The file was changed after training; do not use it. Retrain, or load a model "
                "whose file matches its run."
            )
        with open(path, "rb") as handle:
            return _AllowListUnpickler(handle).load()
    except OSError as error:
        raise ModelError(
            f"Cannot read the model file {named}: {error.strerror or error}."
        ) from None
    except UntrustedModelError as error:
        raise UntrustedModelError(
            f"{named} names {error}, which is not on the list of types a stance model may hold, so "
            "it was not loaded "
            "(loading it could run code from the file). Use models written by `stance train` from "
            "a source you trust."
        ) from None
    except ModelError:
        raise
    except Exception as error:  # a truncated or corrupt file: pickle raises many kinds
        raise ModelError(
            f"{named} could not be loaded as a stance model: {type(error).__name__}: {error}."
        ) from None
