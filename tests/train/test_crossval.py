"""`stance cv`: fold groupings, and the logged run, through main(argv) with a store under
tmp_path.
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from train.crossval import folds, hashtag_groups
from train.errors import ConfigError
from train.metrics import compute_metrics

SAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "sample.toml"
# The sample data, without its two slowest feature steps.
ARGS = [
    "--data-dir",
    SAMPLE.parents[1] / "data",
    "--set",
    "features.char=false",
    "--set",
    "features.sentiment=false",
]


def test_hashtag_groups_skip_collection_tags_and_pick_the_most_widespread():
    texts = pd.Series(
        [
            "Vote! #SemST #tcot",
            "No way #tcot #SemST #LoveWins",
            "Yes #lovewins #SemST",
            "Sure #SemST #lovewins",
            "plain words #SemST",
            "more plain words",
        ]
    )
    groups = hashtag_groups(texts)
    # #semst is on more than half the rows: ignored. #lovewins (3 rows) beats #tcot (2) on row 2.
    assert groups[:4].tolist() == ["#tcot", "#lovewins", "#lovewins", "#lovewins"]
    assert groups[4] != groups[5] and not groups[4].startswith(
        "#"
    )  # no other hashtag: a group of its own


def test_folds_keep_groups_whole_and_cover_every_row_once(sentences):
    frame = sentences.assign(group=[f"body{i // 3}" for i in range(len(sentences))])
    for grouping, column in (("target", "target"), ("group", "group")):
        seen = []
        for train_rows, held_out_rows in folds(frame, 2, grouping, seed=13):
            assert not set(frame[column].iloc[train_rows]) & set(frame[column].iloc[held_out_rows])
            seen.extend(held_out_rows)
        assert sorted(seen) == list(range(len(frame)))
    with pytest.raises(ConfigError, match="need at least 3 groups; the training split has 2"):
        list(folds(frame, 3, "target", seed=13))
    with pytest.raises(ConfigError, match="at least 9 rows of each label; the rarest has 8"):
        list(folds(frame, 9, "none", seed=13))
    with pytest.raises(ConfigError, match="Unknown grouping 'topic'"):
        folds(frame, 2, "topic", seed=13)


def test_cv_logs_fold_and_pooled_metrics_and_never_reads_test(tracking, run_cli):
    code, out, err = run_cli("cv", SAMPLE, "--folds", "3", *ARGS)
    assert code == 0, err
    run_id = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
    assert [line.split(":")[0] for line in out.splitlines()[:3]] == ["fold 1", "fold 2", "fold 3"]
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("fold ")] == [
        "fold 1/3",
        "fold 2/3",
        "fold 3/3",
    ]  # progress
    run = MlflowClient().get_run(run_id)
    metrics = run.data.metrics
    assert not [m for m in metrics if m.startswith(("test_", "valid_"))]
    folds_shown = [float(line.split()[-1]) for line in out.splitlines()[:3]]
    assert metrics["cv_macro_f1"] == pytest.approx(sum(folds_shown) / 3, abs=1e-4)
    # Each fold's score is logged too, one step per fold, as printed.
    history = sorted(
        MlflowClient().get_metric_history(run_id, "fold_macro_f1"), key=lambda m: m.step
    )
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx(folds_shown, abs=1e-4)
    # The pooled metrics are those of the logged out-of-fold predictions, every training row once.
    predictions = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="evaluation/predictions_oof.csv"
        )
    )
    assert len(predictions) == metrics["train_rows"] and predictions["id"].is_unique
    pooled = compute_metrics(
        predictions["label"], predictions["predicted"], ("FAVOR", "AGAINST", "NONE")
    )
    assert metrics["oof_macro_f1"] == pytest.approx(pooled["macro_f1"])

    # Same seed, same folds, same scores, whether the folds run one after another or at once.
    code, again, err = run_cli("cv", SAMPLE, "--folds", "3", *ARGS, "--jobs", "2")
    assert code == 0, err
    assert again.splitlines()[:3] == out.splitlines()[:3]
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("fold ")] == [
        "fold 1/3",
        "fold 2/3",
        "fold 3/3",
    ]
    again_id = next(
        line.split(": ")[1] for line in again.splitlines() if line.startswith("run_id: ")
    )
    in_parallel = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=again_id, artifact_path="evaluation/predictions_oof.csv"
        )
    )
    pd.testing.assert_frame_equal(in_parallel, predictions)

    # Two configurations on the same folds compare pairwise on their out-of-fold predictions.
    code, other, err = run_cli("cv", SAMPLE, "--folds", "3", *ARGS, "--set", "clf__C=0.05")
    assert code == 0, err
    other_id = next(
        line.split(": ")[1] for line in other.splitlines() if line.startswith("run_id: ")
    )
    code, compared, err = run_cli("compare", run_id, other_id)
    assert code == 0, err
    assert (
        "clf.C" in compared
        and "paired bootstrap on the out-of-fold training rows (1000 resamples), macro_f1"
        in compared
    )
    assert "fold_" not in compared  # one value per fold does not fit its one column per run

    code, listed, _ = run_cli("runs", "sample")
    assert f"{run_id} " in listed and "oof_macro_f1" in listed
    code, _, err = run_cli("reproduce", run_id, *ARGS[:2])
    assert code == 2 and "is a `stance cv` run (3-fold, none)" in err


def test_a_store_failing_after_the_folds_keeps_the_metrics_and_predictions(
    tracking, run_cli, tmp_path, store_fails_at
):
    import json

    store_fails_at("log_fold_metrics")
    code, out, err = run_cli("cv", SAMPLE, "--folds", "3", *ARGS)
    assert code == 2 and "Traceback" not in err and "run_id" not in out
    [folder] = (tmp_path / "stance-unlogged").iterdir()
    kept = (
        f"stance-unlogged/{folder.name}/metrics.json, stance-unlogged/{folder.name}/predictions.csv"
    )
    assert (
        f"Logging run {folder.name} failed after its results were computed: the tracking server "
        f"went away. Kept: {kept}. Fix the store" in err
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    predictions = pd.read_csv(folder / "predictions.csv")
    training_rows = int(re.search(r"data: (\d+) training rows", err).group(1))
    assert len(predictions) == training_rows and predictions["id"].is_unique
    assert metrics["oof_macro_f1"] == pytest.approx(
        compute_metrics(
            predictions["label"], predictions["predicted"], ("FAVOR", "AGAINST", "NONE")
        )["macro_f1"]
    )
    per_fold = [metrics[f"fold_{n}_macro_f1"] for n in (1, 2, 3)]
    assert metrics["cv_macro_f1"] == pytest.approx(sum(per_fold) / 3)
    assert mlflow.get_run(folder.name).info.status == "FAILED"
    code, out, _ = run_cli("show", folder.name)
    assert code == 0 and "status:     FAILED" in out
    assert (
        f"kept:       stance-unlogged/{folder.name}/ (metrics.json, predictions.csv), not logged"
        in out
    )


def test_cv_groups_by_target_by_default_when_the_experiment_splits_by_target(tracking, run_cli):
    # Five targets: a held-out target for test and one for validation leave three in train.
    code, _, err = run_cli("cv", SAMPLE, "--folds", "4", *ARGS, "--set", 'split.method="by_target"')
    assert (
        code == 2
        and "4 folds grouped by target need at least 4 groups; the training split has 3" in err
    )
    code, _, err = run_cli("cv", SAMPLE, "--folds", "3", *ARGS, "--set", 'split.method="by_target"')
    assert code == 0 and "grouped by target" in err, err


def test_cv_grouped_by_target_holds_out_whole_targets(tracking, run_cli):
    code, out, err = run_cli("cv", SAMPLE, "--folds", "2", "--group-by", "target", *ARGS)
    assert code == 0, err
    assert "grouped by target" in err
    code, _, err = run_cli("cv", SAMPLE, "--folds", "9", "--group-by", "target", *ARGS[:2])
    assert code == 2 and "need at least 9 groups" in err


def test_a_fold_whose_training_rows_lack_a_label_names_the_fold(tracking, run_cli, tmp_path):
    # Target "b" has no NONE rows, so the fold that trains on "b" alone cannot learn NONE.
    rows = ["sentence,target,stance,confidence"] + [  # the sample experiment's column names
        f"sentence {i} on {target} with words {i % 7} and {i % 5},{target},{label},1.0"
        for i in range(120)
        for target, label in [
            ("a", ("FAVOR", "AGAINST", "NONE")[i % 3]),
            ("b", ("FAVOR", "AGAINST")[i % 2]),
        ]
    ]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    code, _, err = run_cli(
        "cv",
        SAMPLE,
        "--folds",
        "2",
        "--group-by",
        "target",
        "--data-dir",
        tmp_path,
        "--set",
        'data.path="rows.csv"',
    )
    assert code == 2 and "Traceback" not in err
    assert re.search(
        r"Cross-validation fold [12]: Label 'NONE' has no training rows \(FAVOR \d+, AGAINST "
        r"\d+, NONE 0\)",
        err,
    ), err


@pytest.mark.parametrize(
    "k, jobs, message",
    [(1, 1, "at least 2 folds, got 1"), (5, 0, "jobs must be at least 1, got 0")],
)
def test_library_refuses_impossible_counts_before_reading_data(tmp_path, k, jobs, message):
    from train.crossval import run_cv
    from train.search import run_search

    absent = str(tmp_path / "no-data-here")  # reading data first would fail with a different error
    with pytest.raises(ConfigError, match=message):
        run_cv(SAMPLE, k, data_dir=absent, jobs=jobs)
    with pytest.raises(ConfigError, match=message):
        run_search(SAMPLE, 1, jobs=jobs, cv=k, data_dir=absent)
