"""`stance train` end to end, through main(argv), with an MLflow store under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from train.app import COMMANDS
from train.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "experiments" / "sample.toml")
DATA = str(REPO / "data")


def train(capsys, *args) -> tuple[int, str, str]:
    code = main(["train", *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_id_from(out: str) -> str:
    return next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One training run of the sample experiment, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        import contextlib
        from io import StringIO

        out = StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(StringIO()):
            assert main(["train", SAMPLE, "--data-dir", DATA]) == 0
        yield uri, run_id_from(out.getvalue()), out.getvalue()


def test_version_names_the_installed_package(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"stance {version('stance')}"


def test_train_prints_run_id_and_headline(sample_run):
    uri, run_id, out = sample_run
    assert len(run_id) == 32
    assert "test_macro_f1: 0." in out


def test_run_has_params_metrics_hashes_and_environment(sample_run):
    uri, run_id, _ = sample_run
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.params["model.clf.C"] == "10.0"
    assert run.data.params["data.format"] == "csv"
    for name in (
        "valid_macro_f1",
        "test_macro_f1",
        "test_f_avg",
        "test_f1_FAVOR",
        "test_macro_f1_target_carbon_tax",
        "rows_read",
        "train_seconds",
    ):
        assert name in run.data.metrics, name
    assert run.data.metrics["rows_read"] == 418 == run.data.metrics["rows_kept"]
    tags = run.data.tags
    assert len(tags["data.sha256.sentences.csv"]) == 64
    assert tags["git_dirty"] in ("true", "false", "unknown")
    assert "version.scikit-learn" in tags
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"train", "valid", "test"}


def test_run_artifacts_include_config_figure_report_and_manifest(sample_run, tmp_path):
    uri, run_id, _ = sample_run
    mlflow.set_tracking_uri(uri)
    folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path)))
    assert (folder / "evaluation" / "confusion_matrix_test.png").read_bytes()[:4] == b"\x89PNG"
    assert "FAVOR" in (folder / "evaluation" / "classification_report_test.txt").read_text()
    manifest = json.loads((folder / "data" / "manifest.json").read_text())
    assert manifest["rows_read"] == manifest["rows_kept"] + manifest["rows_rejected"]
    assert sum(manifest["splits"].values()) == manifest["rows_kept"]
    # The logged config loads back into the same experiment.
    from train.config import Config

    assert Config.from_toml(folder / "config.toml").to_dict() == Config.from_toml(SAMPLE).to_dict()


def test_logged_model_predicts_labels_and_probabilities_through_pyfunc(sample_run):
    uri, run_id, _ = sample_run
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pd.DataFrame(
        {
            "text": ["The congestion charge is a cruel tax on workers."],
            "target": ["congestion charge"],
        }
    )
    out = model.predict(frame)
    assert list(out.columns) == ["label", "proba_FAVOR", "proba_AGAINST", "proba_NONE"]
    assert out["label"].iloc[0] in {"FAVOR", "AGAINST", "NONE"}
    assert abs(out.iloc[0, 1:].sum() - 1) < 1e-9
    requirements = Path(
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model/requirements.txt")
    ).read_text()
    assert "scikit-learn==" in requirements and "torch" not in requirements


def test_same_config_and_seed_give_identical_metrics(sample_run, tracking, capsys):
    uri, first_id, _ = sample_run
    code, out, _ = train(capsys, SAMPLE, "--data-dir", DATA)
    assert code == 0
    first = MlflowClient(uri).get_run(first_id).data.metrics
    second = MlflowClient(tracking).get_run(run_id_from(out)).data.metrics
    first.pop("train_seconds"), second.pop("train_seconds")
    assert first == second


def bad_data_dir(tmp_path) -> Path:
    folder = tmp_path / "data" / "sample"
    folder.mkdir(parents=True)
    source = REPO / "data" / "sample" / "sentences.csv"
    lines = source.read_text().splitlines()
    lines.append("bad-1,,carbon tax,FAVOR,1.0")  # empty text, on line 420
    (folder / "sentences.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "data"


def test_bad_row_stops_training_with_exit_code_2(tracking, tmp_path, capsys):
    code, out, err = train(capsys, SAMPLE, "--data-dir", str(bad_data_dir(tmp_path)))
    assert code == 2
    assert "sentences.csv, line 420: empty text" in err
    assert "Traceback" not in err and "run_id" not in out


def test_quarantine_logs_rejects_and_counts(tracking, tmp_path, capsys):
    code, out, err = train(
        capsys,
        SAMPLE,
        "--data-dir",
        str(bad_data_dir(tmp_path)),
        "--set",
        "data.on_bad_rows=quarantine",
        "--set",
        "features.char=false",
        "--set",
        "model.refit_on_valid=true",
    )
    assert code == 0
    assert "419 rows read, 418 kept, 1 rejected" in err
    run_id = run_id_from(out)
    assert (
        f"next: stance predict runs:/{run_id}/model INPUT" in err
    )  # the way on, with the model's URI
    run = MlflowClient(tracking).get_run(run_id)
    assert run.data.metrics["rows_rejected"] == 1
    assert "refit on train + valid" in err and run.data.metrics["refit_seconds"] > 0
    rejects = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="data/rejects.csv", tracking_uri=tracking
        )
    )
    assert rejects[["line", "reason"]].values.tolist() == [[420, "empty text"]]


def test_a_target_spelt_two_ways_is_flagged_where_targets_get_their_own_weights(
    tracking, tmp_path, capsys
):
    folder = tmp_path / "data" / "sample"
    folder.mkdir(parents=True)
    rows = pd.read_csv(REPO / "data" / "sample" / "sentences.csv")
    first = rows["target"].iloc[0]
    rows.loc[rows["target"] == first, "target"] = [
        first.upper() if i % 5 == 0 else first for i in range(int((rows["target"] == first).sum()))
    ]
    rows.to_csv(folder / "sentences.csv", index=False)
    fast = ["--data-dir", str(tmp_path / "data"), "--set", "features.char=false"]
    code, _, err = train(capsys, SAMPLE, *fast, "--set", "model.strategy=per_target")
    assert (
        code == 0
        and f"warning: targets that differ only in case or spacing are kept apart: {first!r}" in err
    )
    assert f'[data.target_names] "{first.upper()}" = "{first}"' in err
    # A joint model reads targets as text only, so the spellings do not split anything.
    code, _, err = train(capsys, SAMPLE, *fast)
    assert code == 0 and "warning: targets" not in err


def test_bad_override_is_a_clear_error(tracking, capsys):
    code, _, err = train(capsys, SAMPLE, "--data-dir", DATA, "--set", "clf__Cee=1")
    assert code == 2 and "Unknown parameter 'Cee'" in err


def test_bad_feature_value_is_a_clear_error_not_a_traceback(tracking, capsys):
    # Feature steps validate their values in fit (scikit-learn's contract); training asks them
    # first.
    code, _, err = train(capsys, SAMPLE, "--data-dir", DATA, "--set", 'char__analyzer="bytes"')
    assert code == 2 and "analyzer must be 'char_wb' or 'char', got 'bytes'" in err
    assert "feature step 'char'" in err and "[features.char]" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["train", "cv", "search"])
@pytest.mark.parametrize(
    "override, named",
    [
        ("clf__C=-1", "[model.clf]"),
        ("word__ngram_range=[3,1]", "[features.word]"),
        ("word__min_df=-5", "[features.word]"),
    ],
)
def test_impossible_hyperparameters_stop_before_the_data_is_loaded_or_a_run(
    tmp_path, monkeypatch, run_cli, command, override, named
):
    # Before, these failed in fit, after the data was read, leaving a FAILED run in the store.
    # Only the data file's header is read first (train.preflight), and no store is opened.
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.chdir(tmp_path)
    extra = ["--trials", "1"] if command == "search" else []
    code, _, err = run_cli(command, SAMPLE, "--data-dir", DATA, "--set", override, *extra)
    assert (
        code == 2
        and named in err
        and "cannot be trained" in err
        and len(err.strip().splitlines()) == 1
    )
    assert not store.exists()


def test_a_fit_error_names_the_feature_step_or_the_classifier(tracking, capsys):
    # The union's own error would not say which of its steps raised it.
    code, _, err = train(capsys, SAMPLE, "--data-dir", DATA, "--set", "word__min_df=1000")
    assert code == 2 and "feature step 'word'" in err and "[features.word]" in err
    code, _, err = train(capsys, SAMPLE, "--data-dir", DATA, "--set", "clf__C=-1")
    assert code == 2 and "feature step" not in err and "[model.clf]" in err


def test_a_declared_label_without_training_rows_is_a_clear_error(tracking, capsys):
    # Mapping NONE away leaves the sample's declared labels with one that no row carries.
    code, _, err = train(
        capsys, SAMPLE, "--data-dir", DATA, "--set", 'data.label_map={NONE="AGAINST"}'
    )
    assert code == 2 and "Traceback" not in err
    assert "Label 'NONE' has no training rows (FAVOR 96, AGAINST 196, NONE 0)" in err
    code, _, err = train(
        capsys,
        SAMPLE,
        "--data-dir",
        DATA,
        "--set",
        'data.label_map={NONE="FAVOR", AGAINST="FAVOR"}',
    )
    assert code == 2 and "fewer than two labels (FAVOR 292, AGAINST 0, NONE 0)" in err


def test_missing_data_names_the_root(tracking, tmp_path, capsys):
    code, _, err = train(capsys, SAMPLE, "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "STANCE_DATA_DIR" in err


def test_logged_model_serves_mlflow_models_predict(sample_run, tmp_path):
    import subprocess
    import sys

    uri, run_id, _ = sample_run
    mlflow.set_tracking_uri(uri)
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path))
    source = tmp_path / "input.csv"
    pd.DataFrame(
        {
            "text": ["The charge is a cruel tax.", "Fares rise in May."],
            "target": ["congestion charge"] * 2,
        }
    ).to_csv(source, index=False)
    output = tmp_path / "predictions.json"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "predict",
        "-m",
        folder,
        "-i",
        str(source),
        "-t",
        "csv",
        "-o",
        str(output),
        "--env-manager",
        "local",
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    predictions = pd.DataFrame(json.loads(output.read_text())["predictions"])
    assert (
        list(predictions.columns) == ["label", "proba_FAVOR", "proba_AGAINST", "proba_NONE"]
        and len(predictions) == 2
    )


def test_report_artifacts_and_model_card_match_logged_metrics(sample_run, tmp_path):
    import re

    uri, run_id, _ = sample_run
    mlflow.set_tracking_uri(uri)
    folder = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="report", dst_path=str(tmp_path)
        )
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "misclassified.json",
        "model_card.md",
        "reliability_test.csv",
        "reliability_test.png",
        "top_features.csv",
    ]
    metrics = MlflowClient(uri).get_run(run_id).data.metrics
    card = (folder / "model_card.md").read_text()
    rows = re.findall(r"^\| (\w+) \| ([-\d.]+) \| ([\d.]+) \|$", card, flags=re.MULTILINE)
    assert {name for name, _, _ in rows} >= {
        "accuracy",
        "macro_f1",
        "f_avg",
        "f1_FAVOR",
        "f1_AGAINST",
        "f1_NONE",
    }
    for name, valid, test in rows:
        assert test == f"{metrics[f'test_{name}']:.4f}", name
        assert valid == f"{metrics[f'valid_{name}']:.4f}", name
    low, high = re.search(r"95 % bootstrap interval ([\d.]+) to ([\d.]+)", card).groups()
    assert (low, high) == (
        f"{metrics['test_macro_f1_ci_low']:.4f}",
        f"{metrics['test_macro_f1_ci_high']:.4f}",
    )
    assert (
        metrics["test_macro_f1_ci_low"]
        <= metrics["test_macro_f1"]
        <= metrics["test_macro_f1_ci_high"]
    )
    assert f"ECE {metrics['test_ece']:.4f}" in card or f"| {metrics['test_ece']:.4f} |" in card
    by_target = re.findall(
        r"^\| ([^|]+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", card, flags=re.MULTILINE
    )
    assert (
        len(by_target) == 5
        and sum(int(rows) for _, rows, _, _ in by_target) == metrics["test_rows"]
    )
    for target, _, test, valid in by_target:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", target).strip("_")
        assert (test, valid) == (
            f"{metrics[f'test_macro_f1_target_{name}']:.4f}",
            f"{metrics[f'valid_macro_f1_target_{name}']:.4f}",
        ), target
    weights = pd.read_csv(folder / "top_features.csv")
    assert (
        set(weights["label"]) == {"FAVOR", "AGAINST", "NONE"}
        and weights["feature"].str.contains("__").all()
    )
    errors = pd.DataFrame(**json.loads((folder / "misclassified.json").read_text()))
    assert (errors["label"] != errors["predicted"]).all()
    assert len(errors) == round(metrics["test_rows"] * (1 - metrics["test_accuracy"]))


def test_a_folder_tracking_store_is_refused_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "mlruns"))
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert "folder store" in err and "MLFLOW_ALLOW_FILE_STORE=true" in err and "sqlite:///" in err
    assert "Traceback" not in err


def test_a_tracking_uri_with_an_unknown_scheme_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://host/store")
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: Cannot open the MLflow store: MLFLOW_TRACKING_URI is 'nosuchscheme://host/store'"
    )
    assert "unset it for ./mlflow.db" in err


def test_an_unreachable_tracking_server_is_reported_at_once_without_a_traceback(
    monkeypatch, capsys
):
    import socket

    # A bound socket that never listens: connecting to it is refused at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        # Were the check before MLflow's retries gone, this keeps the test from waiting minutes on
        # them.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: Cannot reach the MLflow tracking server: MLFLOW_TRACKING_URI is '{uri}', and "
        "connecting to it failed ([Errno"
    )
    assert "Connection refused" in err and "mlflow server --host" in err and "Traceback" not in err


def test_a_server_that_answers_but_is_no_tracking_server_is_reported_without_a_traceback(
    monkeypatch, capsys
):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_error(404)

        do_GET = do_POST = do_HEAD

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        assert main(["runs"]) == 2
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert err.startswith(f"error: the MLflow store at {uri} failed:")
    assert "404" in err and "Traceback" not in err


def test_a_store_failing_after_the_fit_keeps_the_model_and_says_where(
    tracking, tmp_path, capsys, store_fails_at
):
    from train.models import StanceModel

    store_fails_at("log_model")
    code, out, err = train(capsys, SAMPLE, "--data-dir", DATA)
    assert code == 2 and "Traceback" not in err and "run_id" not in out
    kept = list((tmp_path / "stance-unlogged").glob("*/model"))
    assert len(kept) == 1
    assert (
        "failed after the model was fitted: the tracking server went away. Kept: "
        f"{kept[0].relative_to(tmp_path)} (`stance predict" in err
    )
    model = StanceModel.load(kept[0])
    assert model.metrics["test_macro_f1"] > 0  # the evaluation finished before the store failed
    assert (
        list(
            model.predict(pd.DataFrame({"text": ["Carbon taxes work."], "target": ["carbon tax"]}))[
                "label"
            ]
        )[0]
        in model.labels
    )
    run_id = kept[0].parent.name
    assert mlflow.get_run(run_id).info.status == "FAILED"
    # Listed and shown as failed, so that nobody looks for a logged model that is not there.
    assert main(["runs"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[:2] == ["run_id", "status"] and row.split()[:2] == [run_id, "FAILED"]
    assert main(["show", run_id]) == 0
    shown = capsys.readouterr().out
    assert (
        "status:     FAILED" in shown
        and f"model:      not logged; `stance train` kept it as stance-unlogged/{run_id}/model"
        in shown
    )
    assert "runs:/" not in shown


def test_a_store_failing_before_the_fit_keeps_nothing(tracking, tmp_path, capsys, store_fails_at):
    store_fails_at("log_data")
    code, _, err = train(capsys, SAMPLE, "--data-dir", DATA)
    assert code == 2 and "the tracking server went away." in err and "Traceback" not in err
    assert not (tmp_path / "stance-unlogged").exists()


def test_a_disk_error_after_the_fit_keeps_the_model_and_names_the_cause(
    tracking, tmp_path, capsys, store_fails_at
):
    store_fails_at("log_report", OSError(28, "No space left on device"))
    code, _, err = train(capsys, SAMPLE, "--data-dir", DATA)
    assert (
        code == 2
        and "No space left on device" in err
        and "Fix the cause (disk space, permissions)" in err
    )
    assert len(list((tmp_path / "stance-unlogged").glob("*/model"))) == 1


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_s_help_ends_with_examples_of_itself(name, capsys):
    with pytest.raises(SystemExit) as exit_code:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert exit_code.value.code == 0
    examples = out.split("\nexamples:\n", 1)[1].splitlines()
    commands = [line for line in examples if line.startswith("  stance ")]
    assert commands and all(line.split()[1] == name for line in commands)
