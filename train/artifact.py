"""Opening a model, wherever it is: a model folder, ``runs:/ID/model`` or ``models:/NAME@ALIAS``.

Every command that reads a model comes here (predict, evaluate, select, cascade, a prior in
``model.init_from``, Spark's executors, the MLflow pyfunc), so the same checks hold everywhere:

- the model is built from data by :func:`train.modelfile.load`, never unpickled;
- a model from the tracking store must match the manifest sha256 its run recorded when it was
  logged; a run that recorded none is refused, since nothing would show a rewritten model;
- a model whose steps need an optional extra that is missing is refused before any worker starts;
- a model fitted on another encoder graph than this install builds comes with a note
  (:attr:`LoadedModel.notes`), which the commands that predict with it print.
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
    # Said, not raised: the model is sound and its answers close to its run's, but a user who
    # compares them with the run's must know why they may not match.
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
    """A note for each part of ``model`` whose features run the sentence encoder on onnxruntime
    (its own embedding step, or a prior's in ``model.init_from``) and that was fitted on vectors
    of another graph than the one this install builds, or does not say which
    (``versions["encoder_graph"]``, absent from models saved before it was recorded)."""
    parts = (
        [(f"{uri}'s fast model", model.fast), (f"{uri}'s accurate model", model.accurate)]
        if isinstance(model, Cascade)
        else [(uri, model)]
    )
    if isinstance(model, Cascade):  # `stance reproduce` retrains training runs, not a join
        retrain = "`stance reproduce` on each of its two runs, then `stance cascade` again"
    elif uri.startswith("runs:/"):
        retrain = f"`stance reproduce {uri.removeprefix('runs:/').split('/')[0]}`"
    else:
        retrain = "`stance train` on its experiment"
    notes = []
    for who, part in parts:
        fitted_on = part.versions.get("encoder_graph")
        if fitted_on == RECIPE or not _runs_onnx_encoder(part):
            continue
        said = (
            # Cut short: the record comes from the file, which may hold anything there.
            f"was fitted on sentence vectors of the encoder graph {fitted_on[:80]!r}"
            if isinstance(fitted_on, str) and fitted_on
            else "does not record which encoder graph it was fitted on (saved before models did)"
        )
        notes.append(
            f"{who} {said}; this install builds {RECIPE!r}, so its probabilities may differ "
            f"slightly from its run's and a few labels may change. Retrain it ({retrain}) to "
            "match this install."
        )
    return tuple(notes)


def _runs_onnx_encoder(model: StanceModel) -> bool:
    """Whether ``model``'s features, or those of a model nested in it as a prior, run the
    sentence encoder on onnxruntime (whose graph the install builds; numpy has none)."""
    features = model.config.get("features")
    embeddings = features.get("embeddings") if isinstance(features, dict) else None
    if isinstance(embeddings, dict) and embeddings.get("runtime") in ("onnx", "onnx-int8"):
        return True
    return any(
        _runs_onnx_encoder(part)
        for value in model.estimator.get_params(deep=True).values()
        if isinstance(value, StanceModel | Cascade)
        for part in _parts(value)
    )


def _parts(model: StanceModel | Cascade) -> list[StanceModel]:
    return [model.fast, model.accurate] if isinstance(model, Cascade) else [model]


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
