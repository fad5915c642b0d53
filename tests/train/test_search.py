"""`stance search`: parent and child runs, cross-validation, a study shared by two processes."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import assert_distinct_trials_that_rerun_exactly
from train.cli import main
from train.config import Config

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "experiments" / "sample.toml")
DATA = str(REPO / "data")
FAST = ["--set", "features.char=false", "--set", "features.sentiment=false"]


def run_main(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _train(overrides: list[str]) -> float:
    """The validation macro-F1 of `stance train` on the sample with ``overrides``."""
    code, out, err = run_main("train", SAMPLE, "--data-dir", DATA, *FAST, *overrides)
    assert code == 0, err
    run_id = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
    return MlflowClient().get_run(run_id).data.metrics["valid_macro_f1"]


def children(parent: str) -> list:
    client = MlflowClient()
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_search_logs_a_parent_with_one_child_per_trial(tracking):
    code, out, err = run_main("search", SAMPLE, "--trials", "3", "--data-dir", DATA, *FAST)
    assert code == 0, err
    parent = next(
        line.split(": ")[1] for line in out.splitlines() if line.startswith("parent_run_id: ")
    )
    trials = children(parent)
    assert len(trials) == 3
    for trial in trials:
        assert "valid_macro_f1" in trial.data.metrics and "clf__C" in trial.data.params
        assert not [
            m for m in trial.data.metrics if m.startswith("test_")
        ]  # trials never see the test split
    parent_run = MlflowClient().get_run(parent)
    metrics = parent_run.data.metrics
    assert metrics["best_value"] == max(t.data.metrics["valid_macro_f1"] for t in trials)
    assert "test_macro_f1" in metrics and "default_value" in metrics and metrics["trials"] == 3
    assert {"best.clf__C", "best.word__ngram_range", "best.char__min_df"} <= set(
        parent_run.data.params
    )


def test_runs_hides_trials_unless_asked_and_scores_them_on_validation(tracking):
    code, out, err = run_main("search", SAMPLE, "--trials", "2", "--data-dir", DATA, *FAST)
    assert code == 0, err
    parent = next(
        line.split(": ")[1] for line in out.splitlines() if line.startswith("parent_run_id: ")
    )
    trial_ids = {t.info.run_id for t in children(parent)}

    code, out, _ = run_main("runs", "sample")
    assert code == 0
    assert parent in out and not any(t in out for t in trial_ids)

    code, out, _ = run_main("runs", "sample", "--trials")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert trial_ids <= set(rows)
    for trial in trial_ids:
        # run_id, parent, date, time, experiment, strategy, classifier, headline, value, data
        assert rows[trial][1] == parent[:8]
        assert rows[trial][4:8] == ["sample", "joint", "logreg", "valid_macro_f1"]
        assert float(rows[trial][8]) == pytest.approx(
            MlflowClient().get_run(trial).data.metrics["valid_macro_f1"], abs=1e-6
        )
        assert (
            rows[trial][9] == rows[parent][8]
        )  # the parent has no parent column value, so one field fewer


def test_best_config_retrains_to_the_search_test_metrics(tracking, tmp_path):
    code, out, err = run_main("search", SAMPLE, "--trials", "2", "--data-dir", DATA, *FAST)
    assert code == 0, err
    parent = next(
        line.split(": ")[1] for line in out.splitlines() if line.startswith("parent_run_id: ")
    )
    command = next(
        line for line in out.splitlines() if line.startswith("train the best configuration: ")
    )
    best = MlflowClient().get_run(parent).data
    assert (
        f"--set clf__C={float(best.params['best.clf__C'])!r}" in command
        and "--set model.refit_on_valid=true" in command
    )

    config = tmp_path / "best_config.toml"
    config.write_text(
        Path(
            mlflow.artifacts.download_artifacts(run_id=parent, artifact_path="best_config.toml")
        ).read_text()
    )
    code, out, err = run_main("train", str(config), "--data-dir", DATA)
    assert code == 0, err
    retrained = (
        MlflowClient()
        .get_run(
            next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
        )
        .data
    )
    searched = {k: v for k, v in best.metrics.items() if k.startswith("test_")}
    assert len(searched) > 10
    assert {k: retrained.metrics[k] for k in searched} == searched

    # Neither the search run nor a trial holds what `stance train` logs, so neither can be
    # reproduced.
    code, _, err = run_main("reproduce", parent, "--data-dir", DATA)
    assert code == 2 and "is a `stance search` run" in err and "best_config.toml" in err
    trial = children(parent)[0].info.run_id
    code, _, err = run_main("reproduce", trial, "--data-dir", DATA)
    assert code == 2 and f"is a trial of search run {parent}" in err
    # Two trials still compare: their parameters differ; the paired test needs test predictions they
    # lack.
    code, out, err = run_main("compare", *[t.info.run_id for t in children(parent)])
    assert code == 0, err
    assert "clf__C" in out and "valid_macro_f1" in out and "paired test skipped" in out


def test_parallel_trials_each_get_their_child_run(tracking):
    code, out, err = run_main(
        "search", SAMPLE, "--trials", "4", "--jobs", "2", "--data-dir", DATA, *FAST
    )
    assert code == 0, err
    parent = next(
        line.split(": ")[1] for line in out.splitlines() if line.startswith("parent_run_id: ")
    )
    names = sorted(t.data.tags["mlflow.runName"] for t in children(parent))
    assert names == ["trial-0", "trial-1", "trial-2", "trial-3"]


def test_search_with_cross_validation_logs_mean_and_spread(tracking):
    code, out, err = run_main(
        "search", SAMPLE, "--trials", "2", "--cv", "3", "--data-dir", DATA, *FAST
    )
    assert code == 0, err
    parent = next(
        line.split(": ")[1] for line in out.splitlines() if line.startswith("parent_run_id: ")
    )
    for trial in children(parent):
        assert {"cv_macro_f1", "cv_macro_f1_std", "cv_accuracy_std"} <= set(trial.data.metrics)


def test_cross_validated_search_spreads_folds_over_jobs_and_finds_the_same_trials(tracking):
    def trials_of(*extra):
        code, out, err = run_main(
            "search", SAMPLE, "--trials", "2", "--cv", "3", "--data-dir", DATA, *FAST, *extra
        )
        assert code == 0, err
        parent = next(
            line.split(": ")[1] for line in out.splitlines() if line.startswith("parent_run_id: ")
        )
        return {
            t.data.tags["mlflow.runName"]: (t.data.params, t.data.metrics["cv_macro_f1"])
            for t in children(parent)
        }, out

    one_job, one_out = trials_of()
    two_jobs, two_out = trials_of("--jobs", "2")
    # Trials run in order whatever --jobs says, so TPE proposes the same ones and folds score alike.
    assert sorted(one_job) == ["trial-0", "trial-1"]
    assert two_jobs == one_job

    def results(out: str) -> list[str]:
        """Best value and params, past the run ids (the hint to train the best names one)."""
        return [re.sub(r"-r [0-9a-f]{32}", "-r RUN", line) for line in out.splitlines()[2:]]

    assert results(one_out) == results(two_out)


def test_search_folds_can_be_grouped_as_in_stance_cv(tracking):
    # The sample has five targets: nine folds grouped by target cannot exist, nine stratified ones
    # can.
    code, _, err = run_main(
        "search",
        SAMPLE,
        "--trials",
        "1",
        "--cv",
        "9",
        "--group-by",
        "target",
        "--data-dir",
        DATA,
        *FAST,
    )
    assert code == 2 and "9 folds grouped by target need at least 9 groups" in err
    code, _, err = run_main(
        "search", SAMPLE, "--trials", "1", "--group-by", "target", "--data-dir", DATA, *FAST
    )
    assert code == 2 and "give --cv K" in err
    code, out, err = run_main(
        "search",
        SAMPLE,
        "--trials",
        "1",
        "--cv",
        "2",
        "--group-by",
        "target",
        "--data-dir",
        DATA,
        *FAST,
    )
    assert code == 0, err
    parent = next(
        line.split(": ")[1] for line in out.splitlines() if line.startswith("parent_run_id: ")
    )
    assert "cv_macro_f1" in children(parent)[0].data.metrics


def test_two_processes_share_one_sqlite_study(tracking, search_command, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    # Create the MLflow store's tables first: two processes racing to create a new
    # SQLite store's schema is MLflow's own limitation, not the study's.
    MlflowClient(tracking).search_experiments()
    command = search_command(storage, "shared")
    processes = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(4))  # none lost, none duplicated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert_distinct_trials_that_rerun_exactly(study, Config.from_toml(SAMPLE).seed, _train)
    code, _, err = run_main(
        "search",
        SAMPLE,
        "--trials",
        "1",
        "--storage",
        storage,
        "--study-name",
        "shared",
        "--data-dir",
        DATA,
        *FAST,
    )
    assert code == 0, err
    assert (
        len(optuna.load_study(study_name="shared", storage=storage).trials) == 5
    )  # resumed, not restarted


def test_bad_search_space_is_a_clear_error(tracking):
    code, _, err = run_main(
        "search",
        SAMPLE,
        "--trials",
        "1",
        "--set",
        "search.space.clf__C={low=5,high=1}",
        "--data-dir",
        DATA,
    )
    assert code == 2 and "low < high" in err
    code, _, err = run_main(
        "search",
        SAMPLE,
        "--trials",
        "1",
        "--set",
        "search.space.clf__Cee={low=1,high=5}",
        "--data-dir",
        DATA,
    )
    assert code == 2 and "Unknown parameter 'Cee'" in err


def test_a_store_failing_after_the_refit_keeps_the_chosen_model(tracking, tmp_path, store_fails_at):
    # Before, search alone of the commands set its run up without keep_unlogged, and lost the
    # refitted model.
    from train.models import StanceModel

    store_fails_at("log_model")
    code, out, err = run_main("search", SAMPLE, "--trials", "2", "--data-dir", DATA, *FAST)
    assert code == 2 and "Traceback" not in err and "parent_run_id" not in out
    kept = list((tmp_path / "stance-unlogged").glob("*/model"))
    assert len(kept) == 1 and (kept[0].parent / "metrics.json").exists()
    assert "failed after the model was fitted" in err and str(kept[0].relative_to(tmp_path)) in err
    assert StanceModel.load(kept[0]).config["model"]["refit_on_valid"] is True
