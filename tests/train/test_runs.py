"""`stance runs`, `compare`, `register` and `reproduce`, through main(argv), on a tracking store
under tmp_path.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from train.cli import main
from train.metrics import paired_bootstrap

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "experiments" / "sample.toml")


def run_main(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def trained(*argv) -> str:
    code, out, err = run_main("train", *argv)
    assert code == 0, err
    return next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A data copy and two sample runs that differ in C and feature set."""
    folder = tmp_path_factory.mktemp("runs")
    shutil.copytree(REPO / "data" / "sample", folder / "data" / "sample")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)
        data = str(folder / "data")
        first = trained(SAMPLE, "--data-dir", data, "--set", "features.char=false")
        second = trained(
            SAMPLE, "--data-dir", data, "--set", "features.char=false", "--set", "clf__C=0.05"
        )
        yield {"folder": folder, "data": data, "first": first, "second": second}


def test_runs_lists_and_sorts_by_a_metric(store):
    code, out, _ = run_main("runs", "sample", "--sort", "test_macro_f1")
    assert code == 0
    lines = out.splitlines()
    assert "run_id" in lines[0] and "test_macro_f1" in lines[0] and "data" in lines[0]
    assert "status" not in lines[0].split()  # shown only when some run did not finish
    listed = [line.split()[0] for line in lines[1:]]
    assert set(listed) >= {store["first"], store["second"]}
    metrics = {r: MlflowClient().get_run(r).data.metrics["test_macro_f1"] for r in listed}
    assert [metrics[r] for r in listed] == sorted(metrics.values(), reverse=True)


def test_runs_rejects_unknown_metric_and_experiment(store):
    code, _, err = run_main("runs", "sample", "--sort", "test_nothing")
    assert code == 2 and "No metric 'test_nothing'" in err
    code, _, err = run_main("runs", "nonexistent")
    assert code == 2 and "No experiment 'nonexistent'" in err


def test_compare_shows_differences_and_a_paired_test(store):
    # Runs named by the first eight characters, as compare and RESULTS.md print them.
    code, out, _ = run_main("compare", store["first"][:8], store["second"][:8])
    assert code == 0
    assert "model.clf.C" in out and "test_macro_f1" in out
    assert "paired bootstrap on the test rows (1000 resamples), macro_f1" in out
    assert "95 % interval [" in out and "p = " in out


def test_a_run_id_prefix_must_name_one_run(store, monkeypatch):
    import re

    from train import store as tracking_store

    assert tracking_store.run_info(store["first"][:4])["run_id"] == store["first"]
    code, _, err = run_main("compare", store["first"][:3], store["second"])
    assert (
        code == 2
        and f"No run '{store['first'][:3]}'" in err
        and "needs four characters at least" in err
    )
    # Two runs share a first character once there are 17 of them; allow one-character
    # prefixes to reach that case without creating thousands of runs.
    monkeypatch.setattr(tracking_store, "RUN_ID_PREFIX", re.compile(r"[0-9a-f]{1,31}"))
    experiment = MlflowClient().get_run(store["first"]).info.experiment_id
    ids = [store["first"], store["second"]]
    while len({i[0] for i in ids}) == len(ids):
        ids.append(MlflowClient().create_run(experiment).info.run_id)
    shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
    code, _, err = run_main("compare", shared, store["second"])
    assert (
        code == 2
        and f"Run id '{shared}' is the start of more than one run" in err
        and "give more of it" in err
    )
    for run_id in ids[2:]:
        MlflowClient().delete_run(run_id)


def test_show_prints_a_training_runs_kind_code_and_model_card(store):
    code, out, _ = run_main("show", store["first"][:8])
    assert code == 0
    assert f"run:        {store['first']}" in out and "kind:       training" in out
    assert f"model:      runs:/{store['first']}/model" in out
    assert "# Model card: sample" in out
    commit = MlflowClient().get_run(store["first"]).data.tags["git_commit"]
    assert f"code:       git {commit[:12]}" in out


def test_show_lists_every_metric_of_a_run_without_a_card(store):
    code, out, _ = run_main(
        "cv", SAMPLE, "--data-dir", store["data"], "--folds", "2", "--set", "features.char=false"
    )
    assert code == 0
    cv_run = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
    code, out, _ = run_main("show", cv_run)
    assert code == 0 and "kind:       cross-validation, 2-fold" in out and "Model card" not in out
    logged = MlflowClient().get_run(cv_run).data.metrics
    shown = dict(line.split() for line in out.split("metrics:\n")[1].splitlines())
    assert shown.keys() == logged.keys()
    assert float(shown["oof_macro_f1"]) == pytest.approx(logged["oof_macro_f1"], abs=5e-5)


def test_show_gives_a_search_trial_its_parents_commit(store):
    code, _, err = run_main(
        "search",
        SAMPLE,
        "--trials",
        "1",
        "--data-dir",
        store["data"],
        "--set",
        "features.char=false",
    )
    assert code == 0, err
    code, out, _ = run_main("runs", "sample", "--trials", "--limit", "1")
    trial, parent = out.splitlines()[1].split()[:2]
    code, out, _ = run_main("show", trial)
    assert code == 0 and f"kind:       search trial of {parent}" in out
    commit = MlflowClient().get_run(store["first"]).data.tags["git_commit"]
    assert f"code:       git {commit[:12]}" in out


def test_show_names_a_run_it_cannot_find(store):
    code, _, err = run_main("show", "ffffffff")
    assert code == 2 and "No run 'ffffffff'" in err and "stance runs" in err


def test_paired_bootstrap_finds_a_real_difference_and_not_a_fake_one():
    truth = ["FAVOR", "AGAINST", "NONE"] * 100
    perfect = list(truth)
    noisy = [t if i % 3 else "NONE" for i, t in enumerate(truth)]
    labels = ("FAVOR", "AGAINST", "NONE")
    real = paired_bootstrap(truth, noisy, perfect, labels, "macro_f1")
    assert real["difference"] > 0 and real["low"] > 0 and real["p_value"] < 0.01
    same = paired_bootstrap(truth, noisy, list(noisy), labels, "macro_f1")
    assert same["difference"] == 0 and same["p_value"] == 1.0


def test_register_moves_the_alias(store):
    code, out, _ = run_main(
        "register", store["first"], "--name", "stance-sample", "--alias", "champion"
    )
    assert code == 0 and "models:/stance-sample@champion" in out
    run_main("register", store["second"][:8], "--name", "stance-sample", "--alias", "champion")
    version = MlflowClient().get_model_version_by_alias("stance-sample", "champion")
    assert version.run_id == store["second"] and str(version.version) == "2"
    code, _, err = run_main("register", "0" * 32, "--name", "x")
    assert code == 2 and "No run" in err


@pytest.mark.parametrize(
    "name, alias, message",
    [
        ("", None, "Cannot register run .* as '': Missing value"),
        ("a/b", None, "Names cannot contain '/'"),
        (
            "stance-reserved",
            "latest",
            "'latest' alias name .* is reserved. Version 1 was removed again",
        ),
    ],
)
def test_register_refuses_a_bad_name_or_alias_and_leaves_no_version(store, name, alias, message):
    code, _, err = run_main(
        "register", store["first"], "--name", name, *(["--alias", alias] if alias else [])
    )
    assert code == 2 and "Traceback" not in err
    assert re.search(message, err), err
    if name:  # an empty name cannot be searched for
        assert not MlflowClient().search_model_versions(f"name = '{name}'")


@pytest.mark.parametrize(
    "argv, least",
    [
        (("runs", "--limit", "0"), 1),
        (("runs", "--limit", "-1"), 1),
        (("search", SAMPLE, "--trials", "0"), 1),
        (("search", SAMPLE, "--trials", "1", "--jobs", "0"), 1),
        (("search", SAMPLE, "--trials", "1", "--cv", "1"), 2),
        (("cv", SAMPLE, "--jobs", "0"), 1),
        (("cv", SAMPLE, "--folds", "1"), 2),
        (("cv", SAMPLE, "--folds", "five"), 2),
        (("predict", "model.pkl", "in.csv", "-o", "out.csv", "--jobs", "-3"), 1),
        (("predict", "model.pkl", "in.csv", "-o", "out.csv", "--chunk-size", "0"), 1),
        (("predict", "model.pkl", "in.csv", "-o", "out.csv", "--explain", "0"), 1),
    ],
)
def test_counts_below_their_least_are_refused_by_the_parser(argv, least):
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(io.StringIO()) as err:
        main(list(argv))
    assert (
        exit_info.value.code == 2 and f"expected a whole number, {least} or more" in err.getvalue()
    )


def test_register_takes_the_logged_model_and_refuses_a_run_without_one(store):
    code, _, _ = run_main("register", store["first"], "--name", "stance-direct")
    assert code == 0
    version = MlflowClient().get_model_version("stance-direct", "1")
    # The logged model's own address, so MLflow need not look under the run's artifacts first.
    assert version.source.startswith("models:/m-") and version.run_id == store["first"]
    experiment = MlflowClient().get_run(store["first"]).info.experiment_id
    bare = MlflowClient().create_run(experiment)
    MlflowClient().set_terminated(bare.info.run_id)
    code, _, err = run_main("register", bare.info.run_id, "--name", "stance-direct")
    assert code == 2 and "logged no model" in err


def test_reproduce_gives_identical_metrics(store):
    code, out, err = run_main("reproduce", store["first"][:8], "--data-dir", store["data"])
    assert code == 0, err
    assert "identical metrics" in out
    new_id = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
    assert MlflowClient().get_run(new_id).data.tags["stance.reproduces"] == store["first"]
    dirty = MlflowClient().get_run(store["first"]).data.tags["git_dirty"] == "true"
    assert ("uncommitted changes" in out) == dirty


def test_reproduce_stops_when_the_data_changed(store, tmp_path):
    changed = tmp_path / "data"
    shutil.copytree(Path(store["data"]), changed)
    csv = changed / "sample" / "sentences.csv"
    csv.write_text(csv.read_text().replace("carbon tax is", "carbon levy is", 1))
    code, out, err = run_main("reproduce", store["first"], "--data-dir", str(changed))
    assert code == 2
    assert "sentences.csv changed since run" in err and "sha256 was" in err
    assert "run_id" not in out
