"""`stance predict --explain`: the features behind each row's label (train/explain.py)."""

import re

import numpy as np
import pandas as pd
import pytest

from train.config import Config
from train.errors import ModelError
from train.explain import group_names, predict_explained
from train.models import StanceModel, build_model, fit_model, needs_target
from train.predict import PredictOptions, predict_file

LABELS = ("FAVOR", "AGAINST", "NONE")
TERM = re.compile(r"^(.+) ([+-]\d+\.\d\d)$")


def fitted(sentences, *overrides) -> StanceModel:
    config = Config.from_layers(
        {"data": {"path": "x.csv", "labels": list(LABELS)}}, ["features.char=false", *overrides]
    )
    return StanceModel(
        fit_model(build_model(config), sentences), LABELS, config.to_dict(), needs_target(config)
    )


def terms(explanation: str) -> list[tuple[str, float]]:
    return (
        [
            (match.group(1), float(match.group(2)))
            for match in map(TERM.match, explanation.split("; "))
            if match
        ]
        if explanation
        else []
    )


def test_embedding_columns_are_summed_per_block_and_other_columns_kept():
    names = np.array(
        [
            "word__no war",
            "embeddings__text_0",
            "embeddings__text_1",
            "embeddings__text_cls_0",
            "Atheism|embeddings__text_3",
            "embeddings__cosine",
            "style__log_length",
        ]
    )
    unique, codes = group_names(names)
    assert unique.tolist() == [
        "word__no war",
        "embeddings__text",
        "embeddings__text_cls",
        "Atheism|embeddings__text",
        "embeddings__cosine",
        "style__log_length",
    ]
    assert codes.tolist() == [0, 1, 1, 2, 3, 4, 5]


def test_terms_are_value_times_the_labels_weight_largest_first(sentences):
    model = fitted(sentences, "model.classifier=logreg")
    labels = model.predict(sentences)["label"].to_numpy()
    explanations = predict_explained(model, sentences[["text", "target"]], 3)["explanation"]
    pipeline = model.estimator
    values = pipeline.named_steps["features"].transform(sentences[["text", "target"]]).tocsr()
    names = pipeline.named_steps["features"].get_feature_names_out().tolist()
    classes = pipeline.named_steps["clf"].classes_.tolist()
    for row, explanation in enumerate(explanations):
        found = terms(explanation)
        assert 1 <= len(found) <= 3 and len(found) == len(explanation.split("; "))
        assert [value for _, value in found] == sorted((value for _, value in found), reverse=True)
        assert all(value > 0 for _, value in found)
        name, value = found[0]
        weight = pipeline.named_steps["clf"].coef_[classes.index(labels[row]), names.index(name)]
        assert value == pytest.approx(values[row, names.index(name)] * weight, abs=0.005)


@pytest.mark.parametrize("strategy", ["joint", "per_target", "shared_per_target"])
def test_explained_predictions_are_the_models_own_bit_for_bit(sentences, strategy):
    model = fitted(sentences, f"model.strategy={strategy}", "model.min_target_rows=5")
    model.label_weights = {"NONE": 0.8, "FAVOR": 1.2}  # the labels follow the decision weights too
    rows = pd.concat(
        [
            sentences,
            pd.DataFrame({"text": ["A target it never saw."], "target": ["a target never seen"]}),
        ],
        ignore_index=True,
    )
    rows.index = rows.index + 100  # the output keeps the input's index, as predict does
    explained = predict_explained(model, rows[["text", "target"]], 3)
    plain = model.predict(rows[["text", "target"]])
    pd.testing.assert_frame_equal(explained.drop(columns="explanation"), plain, check_exact=True)
    assert explained.columns.tolist() == [*plain.columns, "explanation"]


def test_a_row_is_explained_by_the_model_that_scored_it(sentences):
    model = fitted(sentences, "model.strategy=per_target", "model.min_target_rows=5")
    targets = ["carbon tax", "a target never seen", "Iran's missile strikes"]
    rows = pd.DataFrame({"text": ["The carbon tax is a cruel burden."] * 3, "target": targets})
    routes = {
        id(pipeline): positions.tolist() for pipeline, positions in model.estimator.routes(rows)
    }
    assert routes[id(model.estimator.estimators_["carbon tax"])] == [0]
    assert routes[id(model.estimator.estimators_["Iran's missile strikes"])] == [2]
    assert routes[id(model.estimator.joint_)] == [1]
    explained = predict_explained(model, rows, 2)["explanation"].tolist()
    assert all(explained)
    # The unseen target's row is explained as the joint model alone would explain it.
    joint = StanceModel(model.estimator.joint_, LABELS, model.config, True)
    assert explained[1] == predict_explained(joint, rows.iloc[[1]], 2)["explanation"].iloc[0]


def test_shared_and_per_target_copies_appear_only_for_the_rows_own_target(sentences):
    model = fitted(sentences, "model.strategy=shared_per_target", "model.classifier=logreg")
    rows = sentences[sentences["target"] == "carbon tax"]
    explanations = predict_explained(model, rows[["text", "target"]], 20)["explanation"]
    named = [name for explanation in explanations for name, _ in terms(explanation)]
    assert any(name.startswith("carbon tax|") for name in named)
    assert not any(name.startswith("Iran's missile strikes|") for name in named)


def test_a_classifier_without_feature_weights_is_refused_by_name(sentences, tmp_path):
    model = fitted(sentences, "model.classifier=complement_nb")
    with pytest.raises(
        ModelError, match="'complement_nb', whose scores are not a sum of feature weights"
    ):
        predict_explained(model, sentences[["text", "target"]], 3)
    path = model.save(tmp_path / "nb.pkl")
    source = tmp_path / "in.csv"
    sentences[["text", "target"]].to_csv(source, index=False)
    with pytest.raises(ModelError, match="Predict without --explain"):
        predict_file(
            str(path),
            str(source),
            str(tmp_path / "out.csv"),
            PredictOptions(jobs=1, explain=2),
            log=lambda m: None,
        )
    assert not (tmp_path / "out.csv").exists()


def test_predict_adds_an_explanation_to_rows_and_to_the_sentences_of_documents(sentences, tmp_path):
    path = fitted(sentences).save(tmp_path / "model.pkl")
    source = tmp_path / "in.csv"
    sentences[["text", "target"]].to_csv(source, index=False)
    predict_file(
        str(path),
        str(source),
        str(tmp_path / "out.csv"),
        PredictOptions(jobs=1, explain=2),
        log=lambda m: None,
    )
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out.columns[-1] == "explanation" and len(out) == len(sentences)
    assert all(1 <= len(terms(e)) <= 2 for e in out["explanation"])

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(
        "The carbon tax is a cruel burden. It starts at forty dollars.", encoding="utf-8"
    )
    options = PredictOptions(jobs=1, explain=2, documents=True, target="carbon tax")
    predict_file(str(path), str(folder), str(tmp_path / "docs.csv"), options, log=lambda m: None)
    out = pd.read_csv(tmp_path / "docs.csv", keep_default_na=False)
    assert out.loc[out["level"] == "sentence", "explanation"].str.len().gt(0).all()
    assert out.loc[out["level"] == "document", "explanation"].tolist() == [""]
