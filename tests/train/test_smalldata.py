"""Training on few rows (train/smalldata.py): nothing held out, a cross-validated estimate as
the headline, and the model fitted on every row."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from train import schema
from train.artifact import open_model
from train.config import Config
from train.fitting import fit_stance_model

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "experiments" / "sample.toml"


def _sample_rows(tmp_path: Path, rows: int) -> Path:
    """The first ``rows`` rows of the sample under a data root of their own."""
    root = tmp_path / "data"
    (root / "sample").mkdir(parents=True)
    frame = pd.read_csv(REPO / "data" / "sample" / "sentences.csv")
    frame.head(rows).to_csv(root / "sample" / "sentences.csv", index=False)
    return root


def test_few_rows_are_cross_validated_whole_and_the_model_fits_them_all(
    tracking, tmp_path, run_cli
):
    root = _sample_rows(tmp_path, 45)
    code, out, err = run_cli("train", SAMPLE, "--data-dir", root, "--set", "features.char=false")
    assert code == 0, err
    assert "none is held out: 5-fold cross-validation repeated 3 times" in err
    run_id = out.split("run_id: ")[1].split()[0]
    assert "oof_macro_f1: " in out  # the headline is the estimate, not a test split's
    run = mlflow.get_run(run_id)
    metrics, tags = run.data.metrics, run.data.tags
    assert tags[schema.SMALL_DATA] == "5 folds x 3 repeats"
    assert all(tags[tag] for tag in schema.MACHINE_TAGS.values())  # every run records its machine
    assert not {"test_macro_f1", "valid_macro_f1", "test_rows", "valid_rows"} & set(metrics)
    low, high = metrics["oof_macro_f1_ci_low"], metrics["oof_macro_f1_ci_high"]
    assert 0 <= low <= metrics["oof_macro_f1"] <= high <= 1 and high > low
    assert metrics["all_rows"] == 45  # no rows held out
    # Every row was predicted out of fold, with its probabilities.
    artifacts = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "a"))
    oof = pd.read_csv(Path(artifacts) / schema.predictions("oof"))
    assert len(oof) == 45 and oof["predicted"].notna().all()
    assert np.allclose(oof.filter(like="proba_").sum(axis=1), 1.0)
    manifest = json.loads((Path(artifacts) / schema.MANIFEST).read_text())
    assert manifest["splits"] == {"all": 45}
    # The logged model is the one fitted on all 45 rows: the same probabilities, bit for bit.
    config = Config.from_toml(SAMPLE, ["features.char=false"])
    frame = pd.read_csv(root / "sample" / "sentences.csv")
    rows = pd.DataFrame({"text": frame["sentence"], "target": frame["target"]})
    expected = fit_stance_model(
        config,
        rows.assign(label=frame["stance"], weight=frame["confidence"], id=frame["id"].astype(str)),
    )
    logged = open_model(f"runs:/{run_id}/model").model
    assert logged.predict(rows).equals(expected.predict(rows))
    card = (Path(artifacts) / schema.MODEL_CARD).read_text()
    assert "an estimate from 45 rows, too few to hold any out" in card


def test_a_label_with_one_row_is_refused_before_a_run(tracking, tmp_path, run_cli):
    root = _sample_rows(tmp_path, 60)
    path = root / "sample" / "sentences.csv"
    frame = pd.read_csv(path)
    keep = frame[frame["stance"] != "NONE"]
    pd.concat([keep, frame[frame["stance"] == "NONE"].head(1)]).to_csv(path, index=False)
    code, _, err = run_cli("train", SAMPLE, "--data-dir", root)
    assert code == 2
    assert "label 'NONE' has 1 distinct text, and cross-validation needs 2 of each label" in err
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_calibrated_svm_short_of_rows_in_a_fold_is_refused_before_a_run(
    tracking, tmp_path, run_cli
):
    # Before: the folds' fits failed one by one and left a FAILED run in the store.
    root = _sample_rows(tmp_path, 120)
    path = root / "sample" / "sentences.csv"
    frame = pd.read_csv(path)
    favor = frame[frame["stance"] == "FAVOR"].head(2)
    pd.concat([frame[frame["stance"] != "FAVOR"], favor]).to_csv(path, index=False)
    svm = ("--set", 'model.classifier="linear_svm"')
    code, _, err = run_cli("train", SAMPLE, "--data-dir", root, *svm)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "a fold would train on 1 labelled 'FAVOR'" in err
    assert 'model.clf.calibration = "softmax"' in err
    assert mlflow.search_runs(search_all_experiments=True).empty
    softmax = ("--set", 'model.clf.calibration="softmax"')
    code, out, err = run_cli("train", SAMPLE, "--data-dir", root, *svm, *softmax)
    assert code == 0 and "oof_macro_f1: " in out, err


def test_a_per_target_model_short_of_rows_in_a_fold_is_refused_before_a_run(tracking):
    # A fold holds FAVOR rows enough in all, but target b's own model would see one.
    from train import smalldata
    from train.errors import DataError

    texts = [f"{word} {i}" for i, word in enumerate(["good"] * 12 + ["bad"] * 12)]
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(28)],
            "text": texts + ["good b", "bad b0", "bad b1", "bad b2"],
            "target": ["a"] * 24 + ["b"] * 4,
            "label": ["FAVOR"] * 12 + ["AGAINST"] * 12 + ["FAVOR"] + ["AGAINST"] * 3,
            "weight": 1.0,
        }
    )
    overrides = ['model.classifier="linear_svm"', 'model.strategy="per_target"']
    config = Config.from_toml(SAMPLE, [*overrides, "model.min_target_rows=3"])
    with pytest.raises(DataError, match="labelled 'FAVOR' of target 'b'"):
        smalldata.plan(config, frame)
    # With too few rows for a model of its own, target b is answered by the joint model.
    smalldata.plan(Config.from_toml(SAMPLE, [*overrides, "model.min_target_rows=5"]), frame)


def test_the_rows_a_classifier_needs_per_label_come_from_the_classifier():
    from sklearn.linear_model import RidgeClassifier

    from train.classifiers import CLASSIFIERS, register_classifier, rows_needed_per_label

    assert rows_needed_per_label("linear_svm", {}, 0) == 2
    assert rows_needed_per_label("nbsvm", {"calibration": "isotonic"}, 0) == 2
    assert rows_needed_per_label("linear_svm", {"calibration": "softmax"}, 0) == 1
    assert rows_needed_per_label("logreg", {}, 0) == 1
    assert rows_needed_per_label("linear_svm", {"no_such_parameter": 1}, 0) == 1  # fit names it
    register_classifier("ridge_for_test", RidgeClassifier)
    try:
        assert rows_needed_per_label("ridge_for_test", {}, 0) == 1
    finally:
        del CLASSIFIERS["ridge_for_test"]


@pytest.mark.parametrize("below", ["0", "40"])
def test_at_or_above_the_threshold_the_rows_are_split_as_before(tracking, tmp_path, run_cli, below):
    root = _sample_rows(tmp_path, 40)
    code, out, err = run_cli(
        "train", SAMPLE, "--data-dir", root, "--set", f"split.small_data_below={below}",
        "--set", "features.char=false",
    )  # fmt: skip
    assert code == 0, err
    assert "test_macro_f1: " in out and "held out" not in err


def test_a_label_whose_rows_copy_another_labels_text_is_refused_before_a_run(
    tracking, tmp_path, run_cli
):
    # Two NONE rows repeat one FAVOR sentence under another target: the copies share a fold, so
    # NONE has one text of its own, and cross-validation could not train on it in every fold.
    root = _sample_rows(tmp_path, 60)
    path = root / "sample" / "sentences.csv"
    frame = pd.read_csv(path)
    frame = frame[frame["stance"] != "NONE"]
    favor = frame[frame["stance"] == "FAVOR"].iloc[0]
    copies = pd.DataFrame(
        [
            {
                **favor.to_dict(),
                "id": f"copy-{i}",
                "target": f"another target {i}",
                "stance": "NONE",
            }
            for i in range(2)
        ]
    )
    pd.concat([frame, copies]).to_csv(path, index=False)
    code, _, err = run_cli("train", SAMPLE, "--data-dir", root)
    assert code == 2 and "label 'NONE' has 1 distinct text" in err, err
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_labels_that_are_not_metric_names_train_and_reach_the_model_card(
    tracking, tmp_path, run_cli
):
    root = _sample_rows(tmp_path, 45)
    path = root / "sample" / "sentences.csv"
    frame = pd.read_csv(path)
    frame["stance"] = frame["stance"].map(
        {"FAVOR": "agree", "AGAINST": "dis agree", "NONE": "not sure"}
    )
    frame.to_csv(path, index=False)
    labels = '["agree", "dis agree", "not sure"]'
    code, out, err = run_cli(
        "train", SAMPLE, "--data-dir", root, "--set", f"data.labels={labels}",
        "--set", "features.char=false",
    )  # fmt: skip
    assert code == 0, err
    run_id = out.split("run_id: ")[1].split()[0]
    card = mlflow.artifacts.load_text(f"runs:/{run_id}/{schema.MODEL_CARD}")
    assert "| f1_not_sure |" in card
