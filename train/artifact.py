"""Opening a model, wherever it is: a model folder, ``runs:/ID/model`` or ``models:/NAME@ALIAS``.

Every command that reads a model comes here (predict, evaluate, select, cascade, a prior in
``model.init_from``, Spark's executors, the MLflow pyfunc), so the same checks hold everywhere:

- the model is built from data by :func:`train.modelfile.load`, never unpickled;
- a model from the tracking store must match the manifest sha256 its run recorded when it was
  logged; a run that recorded none is refused, since nothing would show a rewritten model;
- a model whose steps need an optional extra that is missing is refused before any worker starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from features.embeddings import missing_extra
from features.onnx_encoder import RECIPE
from features.pipeline import extras_needed
from train import localstore, modelfile, schema
from train.errors import ModelError
from train.models import Cascade, StanceModel


@dataclass(frozen=True)
class LoadedModel:
    """A model and where it came from."""

    model: StanceModel | Cascade
    path: Path | None  # the local folder; None for a model fetched from the store
    sha256: str  # of its manifest: the model's fingerprint, as checked on load
    # What the user should know before trusting its answers (said by the commands that read it).
    notes: tuple[str, ...] = ()

    def file_sha256(self) -> str:
        return self.sha256

    def identity(self) -> str:
        """What ``--resume`` compares: the fingerprint, so a retrained model is never mixed with
        the parts an earlier one predicted."""
        return self.sha256


def is_store_uri(uri: str) -> bool:
    return uri.startswith(("runs:/", "models:/"))


def open_model(uri: str) -> LoadedModel:
    """The stance model a folder, ``runs:/`` or ``models:/`` URI names, built and checked."""
    if is_store_uri(uri):
        with _fetched(uri) as fetched:
            if fetched.expected_sha256 is None:
                raise ModelError(
                    f"{uri}: its run recorded no fingerprint of its model "
                    f"({schema.MODEL_FILE_SHA256}), so a model rewritten in the store could not "
                    "be told apart; it is not loaded. Retrain it with `stance reproduce RUN`."
                )
            model = read(fetched.path, fetched.expected_sha256, uri)
            loaded = LoadedModel(model, None, fetched.expected_sha256)
    else:
        path = Path(uri)
        if not path.exists():
            raise ModelError(
                f"No model at {uri}; expected a model folder, runs:/RUN_ID/model or "
                "models:/NAME@ALIAS."
            )
        sha256 = modelfile.manifest_sha256(path)  # read with this hash, so the two agree
        loaded = LoadedModel(read(path, sha256, uri), path, sha256)
    loaded = dataclasses.replace(loaded, notes=encoder_graph_notes(loaded.model, uri))
    # A step whose optional packages are missing would fail in every worker, with a traceback each.
    needing = extras_needed(loaded.model.step_names())
    if needing and (problem := missing_extra()):
        raise ModelError(f"{uri} uses the {next(iter(needing))} feature step: {problem}")
    return loaded


def encoder_graph_notes(model: StanceModel | Cascade, uri: str) -> tuple[str, ...]:
    """A note for each part of ``model`` that was fitted on vectors of another onnxruntime graph
    than the one this install builds, or that does not say (``versions["encoder_graph"]``,
    absent from models saved before it was recorded). Its predictions stay close but may not
    be those of its run."""
    parts = [model.fast, model.accurate] if isinstance(model, Cascade) else [model]
    notes = []
    for part in parts:
        runtime = part.config.get("features", {}).get("embeddings", {}).get("runtime", "numpy")
        fitted_on = part.versions.get("encoder_graph")
        if runtime == "numpy" or fitted_on == RECIPE:
            continue
        said = (
            f"was fitted on sentence vectors of the encoder graph {fitted_on!r}"
            if fitted_on
            else "does not record which encoder graph it was fitted on (saved before models did)"
        )
        notes.append(
            f"{uri} {said}; this install builds {RECIPE!r}, so its answers may differ from its "
            "run's in the last digits or, near a tie, in a label. Retrain it (`stance reproduce "
            "RUN` or `stance train`) to match this install."
        )
    return tuple(dict.fromkeys(notes))


@contextmanager
def _fetched(uri: str) -> Iterator[localstore.FetchedModel]:
    """The model a store URI names, in a scratch folder: read from a local SQLite store without
    MLflow where it can be (see :mod:`train.localstore`), else fetched through MLflow."""
    with localstore.fetched_model(uri) as fetched:
        if fetched is not None:
            yield fetched
            return
    # Imported here: it imports MLflow (seconds), which a model folder never needs.
    from train import store

    with store.fetched_model(uri) as fetched:
        yield fetched


def read(path: str | Path, expected_sha256: str | None = None, source: str | None = None):
    """A :class:`StanceModel` or :class:`Cascade` from a model folder (see
    :func:`train.modelfile.load`); anything else saved there is refused."""
    return StanceModel.load(path, expected_sha256, source)
