"""Opening a model: what a reader of its answers is told about how it was fitted."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from features.onnx_encoder import RECIPE
from train.artifact import open_model
from train.models import Cascade, StanceModel
from train.predict import PredictOptions, predict_file


def _with_encoder(model: StanceModel, runtime: str, versions: dict) -> StanceModel:
    """``model`` as if its features held the sentence encoder on ``runtime``: the notes read the
    model's config and versions, not its estimator."""
    features = {**model.config.get("features", {}), "embeddings": {"runtime": runtime}}
    return dataclasses.replace(
        model, config={**model.config, "features": features}, versions=versions
    )


@pytest.mark.parametrize(
    ("runtime", "fitted_on", "expected"),
    [
        ("onnx-int8", None, "does not record"),  # a model saved before the record
        ("onnx", "minilm-l6 graph v2", repr("minilm-l6 graph v2")),
        ("onnx-int8", RECIPE, None),
        ("numpy", None, None),  # the numpy reference has no graph
    ],
)
def test_a_model_fitted_on_another_encoder_graph_is_opened_with_a_note(
    model_path, tmp_path, runtime, fitted_on, expected, embeddings_extra
):
    versions = {} if fitted_on is None else {"encoder_graph": fitted_on}
    changed = _with_encoder(StanceModel.load(model_path), runtime, versions)
    notes = open_model(str(changed.save(tmp_path / "model"))).notes
    if expected is None:
        assert notes == ()
    else:
        assert len(notes) == 1
        assert expected in notes[0] and repr(RECIPE) in notes[0]
        assert "Retrain" in notes[0]


def test_a_cascade_names_each_mismatch_once(model_path, tmp_path, embeddings_extra):
    old = _with_encoder(StanceModel.load(model_path), "onnx-int8", {})
    cascade = Cascade(fast=StanceModel.load(model_path), accurate=old, threshold=0.9)
    notes = open_model(str(cascade.save(tmp_path / "cascade"))).notes
    assert len(notes) == 1 and "does not record" in notes[0]


def test_predict_says_the_note_before_predicting(model_path, tmp_path, embeddings_extra):
    old = _with_encoder(StanceModel.load(model_path), "onnx-int8", {}).save(tmp_path / "m")
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["The strikes were reckless."], "target": ["missile strikes"]}).to_csv(
        source, index=False
    )
    said = []
    summary = predict_file(
        str(old), str(source), str(tmp_path / "out.csv"), PredictOptions(), log=said.append
    )
    assert summary.predicted == 1
    assert any(line.startswith("note: ") and "does not record" in line for line in said)


def test_a_trained_model_records_the_graph_it_was_fitted_on(model_path):
    # model_path is fitted with runtime_versions(), as `stance train` does
    assert StanceModel.load(model_path).versions["encoder_graph"] == RECIPE
