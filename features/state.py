"""What a fitted object may hold, said as data: the vocabulary of the model file's state contract.

A model file (:mod:`train.modelfile`) holds no code and no pickle. Every step and classifier
declares the attributes that ``fit`` leaves behind in a class attribute ``fitted_state``, a
mapping from attribute name to one of the field types below, and the loader builds the
object from the project's registries, then gives it exactly those attributes, each checked
against its declared type (dtype and number of dimensions for arrays, a plain value for
scalars, a registered kind for nested parts). Nothing in a file can name a module, a method
or a path: it can only supply values of these types.

Examples
--------
A feature step of your own, registered with ``register_step``, declares what it learns:

>>> class MeanLength:
...     fitted_state = {"mean_": Float(), "vocabulary_": StrIndex()}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class StateError(ValueError):
    """A value in a model file does not have the type its field declares."""


@dataclass(frozen=True)
class Field:
    """Base of the field types. ``optional``: the attribute may be absent (it is set by some
    settings only, such as ``target_cues_`` with ``cross_target_words``)."""

    optional: bool = field(default=False, kw_only=True)


@dataclass(frozen=True)
class Int(Field):
    """A Python ``int`` (a numpy integer is saved as one)."""


@dataclass(frozen=True)
class Float(Field):
    """A Python ``float``; ``numpy=True`` for a ``numpy.float64`` scalar, restored as one."""

    numpy: bool = False


@dataclass(frozen=True)
class Bool(Field):
    """A Python ``bool``."""


@dataclass(frozen=True)
class Text(Field):
    """One string, any value (data such as a column name, never a name of code)."""


@dataclass(frozen=True)
class Choice(Field):
    """One string among ``values`` (a setting that selects behaviour)."""

    values: tuple = ()


@dataclass(frozen=True)
class Array(Field):
    """A numeric numpy array of exactly this ``dtype`` and ``ndim``; ``None`` for ``ndim`` takes
    any number of dimensions."""

    dtype: str = "float64"
    ndim: int | None = 1


@dataclass(frozen=True)
class Labels(Field):
    """Class labels: an array of strings (object or fixed-width unicode, as it was) or of
    integers."""


@dataclass(frozen=True)
class Strings(Field):
    """A sequence of strings, restored as ``container``: ``"tuple"``, ``"list"``,
    ``"frozenset"`` or ``"array"`` (a 1-d object array)."""

    container: str = "tuple"


@dataclass(frozen=True)
class StrIndex(Field):
    """A mapping of distinct strings to the integers ``0 .. n-1`` (a fitted vocabulary), stored
    as the strings in index order, so no index can point outside the table."""


@dataclass(frozen=True)
class Child(Field):
    """A nested part built from its own entry in the file; ``kinds`` limits which (empty: any
    registered kind)."""

    kinds: tuple = ()


@dataclass(frozen=True)
class Children(Field):
    """A list of nested parts."""

    kinds: tuple = ()


@dataclass(frozen=True)
class ChildMap(Field):
    """A dict from string keys to nested parts (a model per target)."""

    kinds: tuple = ()


@dataclass(frozen=True)
class NamedChildren(Field):
    """A list of ``(name, part)`` pairs (a Pipeline's steps, a FeatureUnion's transformers)."""

    kinds: tuple = ()


@dataclass(frozen=True)
class Pair(Field):
    """A tuple of exactly these fields, in order."""

    fields: tuple = ()


@dataclass(frozen=True)
class DType(Field):
    """A numpy scalar type named by one of ``values`` (CountVectorizer's ``dtype``)."""

    values: tuple = ("float64", "float32", "int64", "int32")


@dataclass(frozen=True)
class Json(Field):
    """Plain JSON data kept as it is (a config, metrics, package versions): never settings
    that select code. ``mapping=True``: a JSON object at its top, which its readers look
    keys up in."""

    mapping: bool = False


def check_array(value, field: Array, where: str) -> np.ndarray:
    """``value`` if it is an array of the field's dtype and number of dimensions, else a
    :class:`StateError` naming ``where``."""
    if not isinstance(value, np.ndarray):
        raise StateError(f"{where}: expected an array, found {type(value).__name__}")
    if value.dtype != np.dtype(field.dtype):
        raise StateError(f"{where}: expected dtype {field.dtype}, found {value.dtype}")
    if field.ndim is not None and value.ndim != field.ndim:
        raise StateError(
            f"{where}: expected {field.ndim} dimension(s), found shape {list(value.shape)}"
        )
    return value
