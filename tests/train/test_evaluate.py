"""`stance evaluate` end to end through main(argv) with an MLflow store under tmp_path."""

import hashlib
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from train.metrics import compute_metrics
from train.models import StanceModel

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "experiments" / "sample.toml"
DATA = REPO / "data"
FAST = ("--set", "features.char=false")


def trained_run(run_cli, *overrides) -> str:
    code, out, err = run_cli("train", SAMPLE, "--data-dir", DATA, *FAST, *overrides)
    assert code == 0, err
    return next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The sample model trained once, in a store of its own, and copied out as a model folder."""
    import contextlib
    import io

    from train.artifact import open_model
    from train.cli import main

    folder = tmp_path_factory.mktemp("model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main(["train", str(SAMPLE), "--data-dir", str(DATA), *FAST]) == 0
        return open_model(f"runs:/{evaluation_run(out.getvalue())}/model").model.save(
            folder / "model"
        )


def evaluation_run(out: str) -> str:
    return next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))


def labelled_table(folder: Path, rows: int = 40, **renames) -> Path:
    frame = pd.read_csv(DATA / "sample" / "sentences.csv").head(rows)
    frame = frame.rename(columns={"sentence": "text", "stance": "label"}).rename(columns=renames)
    path = folder / "batch.csv"
    frame.drop(columns=["confidence"]).to_csv(path, index=False)
    return path


def test_scoring_an_experiments_test_split_gives_the_training_runs_test_metrics(tracking, run_cli):
    trained = trained_run(run_cli)
    code, out, err = run_cli("evaluate", f"runs:/{trained}/model", SAMPLE, "--data-dir", DATA)
    assert code == 0, err
    client = MlflowClient(tracking)
    train_metrics = client.get_run(trained).data.metrics
    evaluation = client.get_run(evaluation_run(out))
    for name in ("macro_f1", "accuracy", "f1_FAVOR", "macro_f1_ci_low", "macro_f1_ci_high"):
        assert evaluation.data.metrics[f"eval_{name}"] == train_metrics[f"test_{name}"], name
    assert evaluation.data.metrics["eval_rows"] == train_metrics["test_rows"]
    assert f"eval_macro_f1: {train_metrics['test_macro_f1']:.4f}" in out and "precision" in out
    assert "warning" not in err
    code, _, err = run_cli(
        "evaluate", f"runs:/{trained}/model", SAMPLE, "--data-dir", DATA, "--split", "train"
    )
    assert (
        code == 0
        and "warning: the model was trained on these rows (train split of its own data)" in err
    )
    # It is listed beside the training run under its own headline, and it cannot be retrained.
    code, out, _ = run_cli("runs", "sample")
    assert f"{evaluation.info.run_id} " in out and "eval_macro_f1" in out
    code, _, err = run_cli("reproduce", evaluation.info.run_id)
    assert code == 2 and "is a `stance evaluate` run" in err


def test_a_labelled_table_is_scored_row_by_row_and_logged(tracking, run_cli, tmp_path, model_file):
    table = labelled_table(tmp_path, text="sentence", label="stance")
    code, out, err = run_cli(
        "evaluate", model_file, table, "--text-column", "sentence", "--label-column", "stance"
    )
    assert code == 0, err
    assert "data: 40 rows read, 40 kept, 0 rejected" in err
    run = MlflowClient(tracking).get_run(evaluation_run(out))
    frame = pd.read_csv(table).rename(columns={"sentence": "text", "stance": "label"})
    expected = StanceModel.load(model_file).predict(frame)["label"]
    assert run.data.metrics["eval_accuracy"] == (expected == frame["label"]).mean()
    assert (
        run.data.tags["stance.model_sha256"]
        == hashlib.sha256((model_file / "manifest.json").read_bytes()).hexdigest()
    )
    assert (
        run.data.params["headline_metric"] == "macro_f1"
        and run.data.params["model.classifier"] == "logreg"
    )
    folder = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, dst_path=str(tmp_path / "artifacts"), tracking_uri=tracking
        )
    )
    predictions = pd.read_csv(folder / "evaluation" / "predictions_eval.csv")
    assert (
        predictions["id"].tolist() == frame["id"].tolist()
        and predictions["predicted"].tolist() == expected.tolist()
    )
    assert (folder / "evaluation" / "confusion_matrix_eval.png").read_bytes()[:4] == b"\x89PNG"


def test_a_store_failing_during_an_evaluation_keeps_its_metrics_and_predictions(
    tracking, run_cli, tmp_path, model_file, store_fails_at
):
    store_fails_at("log_predictions")
    table = labelled_table(tmp_path)
    code, out, err = run_cli("evaluate", model_file, table)
    assert code == 2 and "Traceback" not in err and "run_id" not in out
    [folder] = (tmp_path / "stance-unlogged").iterdir()
    assert (
        "failed after its results were computed: the tracking server went away. Kept: "
        f"stance-unlogged/{folder.name}/metrics.json" in err
    )
    kept = pd.read_csv(folder / "predictions.csv")
    frame = pd.read_csv(table)
    assert kept["id"].tolist() == frame["id"].tolist()
    assert (
        kept["predicted"].tolist() == StanceModel.load(model_file).predict(frame)["label"].tolist()
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["eval_accuracy"] == (kept["predicted"] == frame["label"]).mean()


def test_a_store_that_cannot_be_opened_stops_an_evaluation_before_any_row_is_scored(
    tmp_path, run_cli, monkeypatch, model_file
):
    from train.models import StanceModel as Model

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://host/store")
    monkeypatch.setattr(Model, "predict", None)  # scoring a row would now raise a TypeError
    code, _, err = run_cli("evaluate", model_file, labelled_table(tmp_path))
    assert (
        code == 2
        and err.startswith("error: Cannot open the MLflow store")
        and "Traceback" not in err
    )


def test_a_batch_without_one_of_the_models_labels_is_averaged_over_the_others_and_says_so(
    tracking, run_cli, tmp_path, model_file
):
    frame = pd.read_csv(labelled_table(tmp_path))
    predicted = StanceModel.load(model_file).predict(frame)["label"]
    keep = frame["label"].ne("NONE") & predicted.ne("NONE")
    assert keep.sum() >= 5, (
        "the sample model should label some of its own sentences FAVOR or AGAINST"
    )
    frame[keep].to_csv(tmp_path / "no_none.csv", index=False)
    code, out, err = run_cli("evaluate", model_file, tmp_path / "no_none.csv")
    assert code == 0, err
    assert (
        "note: NONE: no row carries it and the model never predicted it, so macro-F1 averages "
        "FAVOR and AGAINST only." in err
    )
    expected = compute_metrics(frame["label"][keep], predicted[keep], ["FAVOR", "AGAINST"])[
        "macro_f1"
    ]
    assert MlflowClient(tracking).get_run(evaluation_run(out)).data.metrics[
        "eval_macro_f1"
    ] == pytest.approx(expected)


def test_bad_rows_stop_with_their_line_or_are_quarantined_with_counts_that_add_up(
    tracking, run_cli, tmp_path, model_file
):
    table = labelled_table(tmp_path, rows=10)
    lines = table.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",favour"  # line 4: a label the model does not predict
    lines.append('x-1,"   ",carbon tax,FAVOR')  # line 12: empty text
    table.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli("evaluate", model_file, table)
    assert code == 2 and "run_id" not in out
    assert (
        "line 4: unknown label 'favour'" in err
        and "line 12: empty text" in err
        and "--on-bad-rows quarantine" in err
    )
    code, out, err = run_cli("evaluate", model_file, table, "--on-bad-rows", "quarantine")
    assert code == 0, err
    assert "data: 11 rows read, 9 kept, 2 rejected" in err
    run = MlflowClient(tracking).get_run(evaluation_run(out))
    assert (
        run.data.metrics["rows_read"],
        run.data.metrics["rows_kept"],
        run.data.metrics["rows_rejected"],
    ) == (11, 9, 2)
    rejects = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="data/rejects.csv", tracking_uri=tracking
        )
    )
    assert rejects["line"].tolist() == [4, 12]


@pytest.mark.parametrize(
    "renames, options, message",
    [
        (
            {"label": "gold"},
            (),
            "no column 'label' (the label); found columns ['id', 'text', 'target', 'gold']. Name "
            "the label column with --label-column.",
        ),
        (
            {"target": "topic"},
            (),
            "no column 'target' (the target); found columns ['id', 'text', 'topic', 'label']. "
            "Name the target column with --target-column, or give every row one target with "
            "--target.",
        ),
        ({"text": "body"}, ("--text-column", "sentence"), "no column 'sentence' (the text)"),
    ],
)
def test_a_missing_column_is_named_with_the_option_that_maps_it(
    tracking, run_cli, tmp_path, renames, options, message, model_file
):
    code, out, err = run_cli("evaluate", model_file, labelled_table(tmp_path, **renames), *options)
    assert code == 2 and message in err and "run_id" not in out


def test_one_target_for_every_row(tracking, run_cli, tmp_path, model_file):
    table = labelled_table(tmp_path)
    frame = pd.read_csv(table)
    frame[frame["target"] == "carbon tax"].drop(columns=["target"]).to_csv(table, index=False)
    code, out, err = run_cli("evaluate", model_file, table, "--target", "carbon tax")
    assert code == 0, err
    metrics = MlflowClient(tracking).get_run(evaluation_run(out)).data.metrics
    assert "eval_macro_f1_target_carbon_tax" in metrics and not any(
        k.startswith("eval_macro_f1_target_") and not k.endswith("carbon_tax") for k in metrics
    )


@pytest.mark.parametrize(
    "data, options, message",
    [
        ("experiment", ("--label-column", "stance"), "--label-column describe a table"),
        ("experiment", ("--on-bad-rows", "quarantine"), "--on-bad-rows describe a table"),
        (
            "table",
            ("--split", "valid"),
            "--split and --data-dir choose the rows of an experiment file",
        ),
        (
            "table",
            ("--split", "test"),
            "--split and --data-dir choose the rows of an experiment file",
        ),
        (
            "table",
            ("--target", "carbon tax", "--target-column", "target"),
            "so the column --target-column 'target' would not be read",
        ),
        ("experiment", ("--text-column", "text"), "--text-column describe a table"),
        ("absent", (), "is not a file; expected a labelled table"),
        (
            "other labels",
            (),
            "labels its rows ['PRO', 'CON'], but the model predicts ['FAVOR', 'AGAINST', 'NONE']",
        ),
    ],
)
def test_options_that_do_not_fit_the_input_are_refused(
    tracking, run_cli, tmp_path, data, options, message, model_file
):
    other = tmp_path / "procon.toml"
    other.write_text('[data]\nformat = "csv"\npath = "nowhere.csv"\nlabels = ["PRO", "CON"]\n')
    source = {
        "experiment": SAMPLE,
        "table": labelled_table(tmp_path),
        "absent": tmp_path / "absent.csv",
        "other labels": other,
    }[data]
    code, out, err = run_cli("evaluate", model_file, source, *options)
    assert code == 2 and message in err and "Traceback" not in err


def test_jsonl_keys_that_first_appear_after_line_one_are_found(
    tracking, run_cli, tmp_path, model_file
):
    frame = pd.read_csv(labelled_table(tmp_path, rows=12))
    path = tmp_path / "batch.jsonl"
    records = frame.to_dict(orient="records")
    del records[0]["target"]  # the first record lacks a key the later ones carry
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    code, out, err = run_cli("evaluate", model_file, path, "--on-bad-rows", "quarantine")
    assert code == 0, err
    assert (
        "data: 12 rows read, 11 kept, 1 rejected" in err
    )  # line 1 has no target, and says so in the rejects


def test_two_models_scored_on_the_same_rows_are_compared_pairwise(tracking, run_cli, tmp_path):
    table = labelled_table(tmp_path, rows=80)
    evaluations = []
    for classifier in ("logreg", "linear_svm"):
        trained = trained_run(run_cli, "--set", f"model.classifier={classifier}")
        code, out, err = run_cli("evaluate", f"runs:/{trained}/model", table)
        assert code == 0, err
        evaluations.append(evaluation_run(out))
    code, out, err = run_cli("compare", *evaluations)
    assert code == 0, err
    assert "paired bootstrap on the evaluated rows (1000 resamples), macro_f1" in out


def test_the_readmes_held_out_batch_is_scored_as_documented(tracking, run_cli, model_file):
    code, out, err = run_cli(
        "evaluate",
        model_file,
        DATA / "sample" / "iran_batch.csv",
        "--text-column",
        "sentence",
        "--label-column",
        "stance",
    )
    assert code == 0, err
    assert "data: 45 rows read, 45 kept, 0 rejected" in err
    metrics = MlflowClient(tracking).get_run(evaluation_run(out)).data.metrics
    assert (
        metrics["eval_rows"] == 45
        and metrics["eval_macro_f1_target_Iran_s_missile_strikes"] == metrics["eval_macro_f1"]
    )
