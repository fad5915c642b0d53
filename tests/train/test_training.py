"""Fitting one experiment's model (train/training.py); the whole `stance train` path is in
test_cli.py.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train.config import Config
from train.errors import ConfigError
from train.fitting import fit_stance_model

REPO = Path(__file__).resolve().parents[2]

LABELS = ["FAVOR", "AGAINST", "NONE"]


def config(*overrides):
    return Config.from_layers({"data": {"path": "x.csv", "labels": LABELS}}, list(overrides))


def test_the_fitted_model_carries_its_labels_settings_and_decision_weights(sentences):
    settings = config("model.label_weights={NONE=0.8}")
    model = fit_stance_model(settings, sentences.assign(weight=1.0))
    assert model.labels == tuple(LABELS)
    assert model.config == settings.to_dict()
    assert model.label_weights == {"NONE": 0.8}
    assert list(model.predict(sentences).columns) == [
        "label",
        *[f"proba_{label}" for label in LABELS],
    ]


def test_row_weights_count_only_when_the_experiment_asks_for_them(sentences):
    # Weight zero on every AGAINST row about the strikes: with use_weights the model
    # learns nothing from them, so their predictions move; without it nothing changes.
    weights = np.where(
        (sentences["label"] == "AGAINST") & (sentences["target"] != "carbon tax"), 0.0, 1.0
    )
    frame = sentences.assign(weight=weights)
    plain = fit_stance_model(config(), sentences.assign(weight=1.0)).predict(sentences)
    ignored = fit_stance_model(config(), frame).predict(sentences)
    used = fit_stance_model(config("data.use_weights=true"), frame).predict(sentences)
    assert ignored.equals(plain)
    assert not used.equals(plain)


def test_a_classifier_that_cannot_fit_is_named_not_a_feature_step(sentences):
    with pytest.raises(ConfigError, match=r"Check \[model.clf\]") as error:
        fit_stance_model(config("clf__C=-1"), sentences.assign(weight=1.0))
    assert "feature step" not in str(error.value)


@pytest.mark.usefixtures("embeddings_extra")
def test_the_fast_semeval_experiment_trains_end_to_end_and_predicts_from_its_run(
    shared_data, tracking, run_cli, tmp_path
):
    """The fast tier as a user meets it: train through the CLI, predict with the logged model."""
    experiment = REPO / "experiments" / "semeval2016-fast.toml"
    code, out, err = run_cli("train", experiment, "--data-dir", shared_data)
    assert code == 0, err
    run_id = out.split("run_id: ")[1].split()[0]
    f_avg = float(out.split("test_f_avg: ")[1].split()[0])
    assert 0.60 < f_avg < 0.75  # a model that learned the task, far above the 0.33 of one label
    rows = tmp_path / "tweets.csv"
    rows.write_text(
        "id,text,target\n1,Every woman deserves the right to choose,Legalization of Abortion\n"
        "2,Praying for the unborn today #prolife,Legalization of Abortion\n"
    )
    output = tmp_path / "out.csv"
    code, _, err = run_cli("predict", f"runs:/{run_id}/model", rows, "-o", output)
    assert code == 0, err
    predicted = pd.read_csv(tmp_path / "out.csv")
    assert list(predicted["id"]) == [1, 2]
    assert set(predicted["label"]) <= {"FAVOR", "AGAINST", "NONE"}


def test_a_model_starts_from_another_whose_probabilities_become_features(sentences, tmp_path):
    # The prior learns the carbon tax; the new model has the strikes' rows only.
    carbon = sentences[sentences["target"] == "carbon tax"].assign(weight=1.0)
    strikes = sentences[sentences["target"] != "carbon tax"].assign(weight=1.0)
    prior = fit_stance_model(config(), carbon)
    path = prior.save(tmp_path / "prior.pkl")
    from train.fitting import prior_model
    from train.models import StanceModel

    prior_model.cache_clear()
    started = fit_stance_model(config(f'model.init_from="{path}"', "model.prior_weight=3"), strikes)
    names = list(started.estimator.named_steps["features"].get_feature_names_out())
    assert [n for n in names if n.startswith("prior__")] == [
        f"prior__proba_{label}" for label in LABELS
    ]
    step = dict(started.estimator.named_steps["features"].transformer_list)["prior"]
    expected = prior.predict(strikes)[[f"proba_{label}" for label in LABELS]].to_numpy() * 3
    np.testing.assert_allclose(step.transform(strikes[["text", "target"]]), expected)
    # Saved and loaded through the allow-list, the prior inside included, with equal predictions.
    loaded = StanceModel.load(started.save(tmp_path / "started.pkl"))
    assert loaded.predict(strikes).equals(started.predict(strikes))
    scratch = fit_stance_model(config(), strikes)
    assert not scratch.predict(carbon).equals(started.predict(carbon))


def test_starting_from_a_missing_model_names_the_key(sentences, tmp_path):
    from train.errors import ModelError

    with pytest.raises(ModelError, match="model.init_from = .*No model at"):
        fit_stance_model(
            config(f'model.init_from="{tmp_path / "absent.pkl"}"'), sentences.assign(weight=1.0)
        )
    with pytest.raises(ConfigError, match="prior_weight must be a positive number"):
        config("model.prior_weight=0")
