"""Opening a model: what a reader of its answers is told about how it was fitted."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from features.onnx_encoder import RECIPE
from features.prior import PriorModel
from train import modelfile
from train.artifact import encoder_graph_notes, open_model
from train.errors import ModelError
from train.models import Cascade, StanceModel
from train.predict import PredictOptions, predict_file
from train.selection import SelectOptions, select


def _one_sentence(folder) -> str:
    source = folder / "in.csv"
    rows = {"text": ["The strikes were reckless.", "They kept us safe."], "target": "the strikes"}
    pd.DataFrame(rows).to_csv(source, index=False)
    return str(source)


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
    as_if_encoder, tmp_path, runtime, fitted_on, expected
):
    versions = {} if fitted_on is None else {"encoder_graph": fitted_on}
    changed = as_if_encoder(runtime, versions)
    folder = str(changed.save(tmp_path / "model"))
    notes = open_model(folder).notes
    if expected is None:
        assert notes == ()
    else:
        assert len(notes) == 1
        assert notes[0].startswith(folder) and expected in notes[0] and repr(RECIPE) in notes[0]
        assert "`stance train` on its experiment" in notes[0]


def test_each_part_of_a_cascade_is_named_and_each_model_is_told_how_to_retrain(as_if_encoder):
    old = as_if_encoder("onnx-int8", {})
    notes = encoder_graph_notes(Cascade(old, old, threshold=0.9), "runs:/0123abcd/model")
    assert [note.split(" ")[0:2] for note in notes] == [
        ["runs:/0123abcd/model's", "fast"],
        ["runs:/0123abcd/model's", "accurate"],
    ]
    # A cascade's run is a join, which `stance reproduce` refuses: its two training runs are not.
    assert all("`stance reproduce` on each of its two runs" in note for note in notes)
    (single,) = encoder_graph_notes(old, "runs:/0123abcd/model")
    assert "`stance reproduce 0123abcd`" in single


def test_a_prior_that_runs_the_encoder_counts_as_the_models_own(model_path, as_if_encoder):
    word_model = StanceModel.load(model_path)
    prior = as_if_encoder("onnx-int8", {"encoder_graph": RECIPE})
    outer = dataclasses.replace(
        word_model, estimator=Pipeline([("prior", PriorModel(prior))]), versions={}
    )
    assert len(encoder_graph_notes(outer, "m")) == 1
    # The same model recording this install's graph, or with a word-only prior: nothing to say.
    assert (
        encoder_graph_notes(dataclasses.replace(outer, versions={"encoder_graph": RECIPE}), "m")
        == ()
    )
    plain = dataclasses.replace(outer, estimator=Pipeline([("prior", PriorModel(word_model))]))
    assert encoder_graph_notes(plain, "m") == ()


def test_predict_says_the_note_before_its_counts(as_if_encoder, tmp_path):
    old = as_if_encoder("onnx-int8", {}).save(tmp_path / "m")
    said = []
    summary = predict_file(
        str(old), _one_sentence(tmp_path), str(tmp_path / "out.csv"), PredictOptions(), said.append
    )
    assert summary.predicted == 2
    notes = [i for i, line in enumerate(said) if line.startswith("note: ") and "encoder" in line]
    counts = [i for i, line in enumerate(said) if line.startswith("rows read 2")]
    assert len(notes) == 1 and len(counts) == 1 and notes[0] < counts[0]


def test_select_says_the_note_once(as_if_encoder, tmp_path, tracking):
    old = as_if_encoder("onnx-int8", {}).save(tmp_path / "m")
    said = []
    select(
        str(old),
        _one_sentence(tmp_path),
        str(tmp_path / "picked.csv"),
        SelectOptions(n=1),
        said.append,
    )
    assert sum("encoder graph" in line for line in said) == 1


def _edited(folder, edit) -> str:
    """``folder``'s model with ``edit(params)`` applied to its manifest, as a hostile file could
    be written (a folder's fingerprint is its manifest, so nothing stops the edit)."""
    manifest = folder / modelfile.MANIFEST
    tree = json.loads(manifest.read_text())
    edit(tree["model"]["params"])
    manifest.write_text(json.dumps(tree))
    return str(folder)


@pytest.mark.parametrize(
    ("field", "value"), [("versions", [1]), ("config", "x"), ("metrics", 3), ("label_weights", [])]
)
def test_a_model_file_whose_records_are_not_objects_is_refused_in_one_line(
    as_if_encoder, tmp_path, field, value
):
    folder = as_if_encoder("onnx-int8", {}).save(tmp_path / "m")
    with pytest.raises(ModelError, match=f"{field}: expected a JSON object") as raised:
        open_model(_edited(folder, lambda params: params.__setitem__(field, value)))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("embeddings", "graph", "expected"),
    [
        ("x", None, None),  # settings of the wrong shape: no encoder it could run
        ({"runtime": ["onnx"]}, None, None),
        ({"runtime": "onnx"}, 5, "does not record"),  # a record of the wrong type
        ({"runtime": "onnx"}, "A" * 100_000, repr("A" * 80)),  # cut short
    ],
)
def test_the_note_reads_a_hostile_model_file_without_crashing_or_flooding(
    as_if_encoder, tmp_path, embeddings, graph, expected
):
    def edit(params):
        params["config"]["features"]["embeddings"] = embeddings
        params["versions"] = {} if graph is None else {"encoder_graph": graph}

    folder = as_if_encoder("onnx-int8", {}).save(tmp_path / "m")
    notes = open_model(_edited(folder, edit)).notes
    if expected is None:
        assert notes == ()
    else:
        assert len(notes) == 1 and expected in notes[0] and len(notes[0]) < 600


def test_a_trained_model_records_the_graph_it_was_fitted_on(model_path):
    # model_path is fitted with runtime_versions(), as `stance train` does
    assert StanceModel.load(model_path).versions["encoder_graph"] == RECIPE
