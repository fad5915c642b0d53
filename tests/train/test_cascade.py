"""The cascade: the model (train/models.py Cascade), the threshold's choice (train/cascade.py) and
`stance cascade` end to end."""

from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train import store
from train.cascade import choose, joined, threshold_for_share
from train.config import Config
from train.data import load_dataset, split_dataset
from train.errors import ModelError
from train.fitting import fit_stance_model
from train.models import Cascade, StanceModel

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "experiments" / "sample.toml"
LABELS = ["FAVOR", "AGAINST", "NONE"]


def _config(*overrides):
    return Config.from_layers({"data": {"path": "x.csv", "labels": LABELS}}, list(overrides))


@pytest.fixture
def two_models(sentences):
    """A weak fast model (word unigrams, strong regularisation) and a stronger one."""
    rows = sentences.assign(weight=1.0)
    fast = fit_stance_model(
        _config("features.char=false", "word__ngram_range=[1, 1]", "clf__C=0.05"), rows
    )
    accurate = fit_stance_model(_config("clf__C=10"), rows)
    return fast, accurate


def test_rows_the_fast_model_is_unsure_of_get_the_accurate_models_answer(two_models, sentences):
    fast, accurate = two_models
    frame = sentences[["text", "target"]]
    alone_fast, alone_accurate = fast.predict(frame), accurate.predict(frame)
    confidence = alone_fast.filter(like="proba_").max(axis=1).to_numpy()
    threshold = float(np.median(confidence))  # about half the rows go on
    out, forward = Cascade(fast, accurate, threshold).route(frame)
    assert np.array_equal(forward, confidence < threshold)
    assert 0 < forward.sum() < len(frame)
    pd.testing.assert_frame_equal(out[forward], alone_accurate[forward])
    pd.testing.assert_frame_equal(out[~forward], alone_fast[~forward])
    assert list(out.dtypes) == list(alone_accurate.dtypes)


def test_threshold_zero_is_the_fast_model_and_above_one_the_accurate_one(two_models, sentences):
    fast, accurate = two_models
    frame = sentences[["text", "target"]]
    pd.testing.assert_frame_equal(Cascade(fast, accurate, 0.0).predict(frame), fast.predict(frame))
    pd.testing.assert_frame_equal(
        Cascade(fast, accurate, np.inf).predict(frame), accurate.predict(frame)
    )


def test_a_cascade_is_saved_and_loaded_like_a_model(two_models, sentences, tmp_path):
    fast, accurate = two_models
    cascade = Cascade(fast, accurate, 0.6)
    loaded = StanceModel.load(cascade.save(tmp_path / "model.pkl"))
    assert isinstance(loaded, Cascade)
    frame = sentences[["text", "target"]]
    pd.testing.assert_frame_equal(loaded.predict(frame), cascade.predict(frame))
    assert loaded.labels == accurate.labels


def test_models_of_different_labels_cannot_be_joined(two_models, sentences):
    fast, _ = two_models
    rows = sentences[sentences["label"] != "NONE"].assign(weight=1.0)
    two_labels = fit_stance_model(
        Config.from_layers({"data": {"path": "x.csv", "labels": ["FAVOR", "AGAINST"]}}, []), rows
    )
    with pytest.raises(ModelError, match="same labels"):
        Cascade(fast, two_labels, 0.5)


def test_the_threshold_of_a_share_forwards_that_share():
    confidence = np.array([0.9, 0.4, 0.7, 0.5, 0.99, 0.6, 0.8, 0.45, 0.55, 0.65])
    for share in (0.0, 0.3, 0.5, 1.0):
        forwarded = confidence < threshold_for_share(confidence, share)
        assert forwarded.sum() == round(share * len(confidence))
        assert confidence[forwarded].max(initial=0) < confidence[~forwarded].min(initial=1)


def test_the_chosen_share_is_where_the_metric_stays_within_the_loss_for_good():
    # A lucky 0.79 at 10 % is not taken: from 20 % to 40 % the metric falls below 0.795 again.
    curve = pd.DataFrame(
        {
            "share": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0],
            "threshold": [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, np.inf],
            "forwarded": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0],
            "f_avg": [0.70, 0.79, 0.76, 0.77, 0.78, 0.796, 0.80],
        }
    )
    assert choose(curve, "f_avg", 0.80, 0.005)["share"] == 0.5
    assert choose(curve, "f_avg", 0.80, 0.10)["share"] == 0.0
    assert choose(curve, "f_avg", 0.80, 0.0)["share"] == 1.0


def test_joining_logged_predictions_follows_the_models_own_rule(two_models, sentences):
    fast, accurate = two_models
    frame = sentences[["text", "target"]]
    logged = {
        name: model.predict(frame).rename(columns={"label": "predicted"}).assign(label="x")
        for name, model in (("fast", fast), ("accurate", accurate))
    }
    predicted, forward = joined(logged["fast"], logged["accurate"], tuple(LABELS), 0.7)
    out, routed = Cascade(fast, accurate, 0.7).route(frame)
    assert np.array_equal(forward, routed)
    assert list(predicted) == list(out["label"])


def _trained(run_cli, *overrides) -> str:
    code, out, err = run_cli("train", SAMPLE, "--data-dir", REPO / "data", *overrides)
    assert code == 0, err
    return out.split("run_id: ")[1].split()[0]


def test_stance_cascade_joins_two_runs_and_predicts_as_they_would(tracking, run_cli, tmp_path):
    fast_run = _trained(run_cli, "--set", "features.char=false", "--set", "clf__C=0.1")
    accurate_run = _trained(run_cli)
    code, out, err = run_cli("cascade", fast_run[:8], accurate_run, "--max-loss", "1")
    assert code == 0, err
    assert "forwards" in err and "validation macro_f1" in err
    run_id = out.split("run_id: ")[1].split()[0]
    info = store.run_info(run_id)
    threshold = float(info["params"]["cascade.threshold"])
    assert info["tags"]["stance.cascade_fast"] == fast_run
    curve = pd.read_csv(StringIO(store.read_artifact(run_id, "cascade/curve_valid.csv")))
    assert len(curve) == 101 and curve["forwarded"].is_monotonic_increasing

    # The metrics it logged for test are those of its model predicting the test rows.
    config = Config.from_toml(SAMPLE)
    test = split_dataset(load_dataset(config.data, REPO / "data").rows, config.split, config.seed)[
        "test"
    ]
    rows = tmp_path / "test.csv"
    test[["id", "text", "target"]].to_csv(rows, index=False)
    code, _, err = run_cli("predict", f"runs:/{run_id}/model", rows, "-o", tmp_path / "out.csv")
    assert code == 0, err
    predicted = pd.read_csv(tmp_path / "out.csv", dtype={"id": str})
    logged = pd.read_csv(
        StringIO(store.read_artifact(run_id, "evaluation/predictions_test.csv")), dtype={"id": str}
    )
    assert list(predicted["label"]) == list(
        logged.set_index("id").loc[predicted["id"], "predicted"]
    )
    share = info["metrics"]["test_forwarded"]
    forwarded = round(share * len(test))
    assert 0 < forwarded < len(test)  # both models answer some rows: the test below means something
    assert f"the accurate model answered {forwarded:,}" in err
    # On every forwarded row the label is the accurate model's, as `stance predict` gives it.
    for run, name in ((fast_run, "fast.csv"), (accurate_run, "accurate.csv")):
        code, _, err = run_cli("predict", f"runs:/{run}/model", rows, "-o", tmp_path / name)
        assert code == 0, err
    alone = {n: pd.read_csv(tmp_path / f"{n}.csv") for n in ("fast", "accurate")}
    forward = alone["fast"].filter(like="proba_").max(axis=1) < threshold
    assert forward.sum() == forwarded
    assert predicted["label"][forward].equals(alone["accurate"]["label"][forward])
    assert predicted["label"][~forward].equals(alone["fast"]["label"][~forward])

    code, _, err = run_cli("reproduce", run_id)
    assert code != 0 and "stance cascade" in err


def test_a_run_that_logged_no_probabilities_is_refused_with_the_fix(tracking, run_cli):
    fast_run, accurate_run = _trained(run_cli, "--set", "clf__C=0.1"), _trained(run_cli)
    # What a run trained before `stance cascade` existed logged: ids, labels and predictions only.
    logged = pd.read_csv(
        StringIO(store.read_artifact(fast_run, "evaluation/predictions_valid.csv"))
    )
    import mlflow

    with mlflow.start_run(run_id=fast_run):
        mlflow.log_text(
            logged[["id", "label", "predicted"]].to_csv(index=False),
            "evaluation/predictions_valid.csv",
        )
    code, _, err = run_cli("cascade", fast_run, accurate_run)
    assert code == 2
    assert "without proba_FAVOR" in err and "Train the experiment again" in err
    code, _, err = run_cli("cascade", accurate_run, accurate_run)
    assert code == 2 and "one run" in err


def test_each_row_of_a_cascade_is_explained_by_the_model_that_answered_it(two_models, sentences):
    from train.explain import predict_explained

    fast, accurate = two_models
    frame = sentences[["text", "target"]]
    threshold = float(np.median(fast.predict(frame).filter(like="proba_").max(axis=1)))
    cascade = Cascade(fast, accurate, threshold)
    explained = predict_explained(cascade, frame, top=3)
    _, forward = cascade.route(frame)
    pd.testing.assert_frame_equal(explained.drop(columns="explanation"), cascade.predict(frame))
    by_accurate = predict_explained(accurate, frame, top=3)["explanation"]
    by_fast = predict_explained(fast, frame, top=3)["explanation"]
    assert explained["explanation"][forward].equals(by_accurate[forward])
    assert explained["explanation"][~forward].equals(by_fast[~forward])


def test_the_curve_shows_both_models_alone_the_allowed_band_and_an_honest_axis():
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from train.cascade import curve_figure

    forwarded = np.linspace(0, 1, 21)
    curve = pd.DataFrame({"forwarded": forwarded, "macro_f1": 0.77 + 0.012 * forwarded})
    figure = curve_figure(curve, "macro_f1", curve.iloc[12], "argq", max_loss=0.5)
    axis = figure.axes[0]
    labels = [line.get_label() for line in axis.get_lines()]
    assert "accurate alone 78.20" in labels and "fast alone 77.00" in labels
    (band,) = [patch for patch in axis.patches if "within 0.5 points" in patch.get_label()]
    low, high = band.get_path().get_extents(band.get_transform() - axis.transData).intervaly
    assert (round(low, 6), round(high, 6)) == (77.7, 78.2)
    bottom, top = axis.get_ylim()
    assert top - bottom >= 3  # a tenth of a point must not fill the height
    plt.close(figure)
