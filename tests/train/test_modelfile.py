"""A model file is data: loading one never runs code from it, and a logged model must match its
run's hash.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import pytest

from train import modelfile
from train.errors import ModelError
from train.models import StanceModel

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "experiments" / "sample.toml")
DATA = str(REPO / "data")
FAST = ("--set", "features.char=false", "--set", "features.sentiment=false")


class _WritesAFile:
    """What an attacker pickles: unpickling it calls os.system, which writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


class _ReachesThroughAnAttribute:
    """A dotted global (protocol 4+) reaches a method through an allowed class."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "pwned")


def _evil_file(folder: Path, payload=_WritesAFile, name: str = "model.pkl") -> tuple[Path, Path]:
    marker = folder / "marker.txt"
    path = folder / name
    path.write_bytes(pickle.dumps(payload(marker), protocol=5))
    return path, marker


@pytest.mark.parametrize(
    "payload, named",
    [(_WritesAFile, "posix.system"), (_ReachesThroughAnAttribute, "pathlib.Path.write_text")],
)
def test_a_file_naming_code_outside_the_allow_list_is_refused_before_it_runs(
    tmp_path, payload, named
):
    path, marker = _evil_file(tmp_path, payload)
    with pytest.raises(modelfile.UntrustedModelError) as error:
        StanceModel.load(path)
    assert not marker.exists()
    message = str(error.value)
    assert str(path) in message and named in message and "\n" not in message


def test_an_untrusted_type_nested_deep_inside_a_real_model_is_refused(tmp_path, sentences):
    from train.config import Config
    from train.training import fit_stance_model

    model = fit_stance_model(
        Config.from_layers(
            {"name": "t", "data": {"path": "x.csv", "labels": ["FAVOR", "AGAINST", "NONE"]}}
        ),
        sentences,
    )
    model.metrics = {"innocent": _WritesAFile(tmp_path / "marker.txt")}
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    with pytest.raises(modelfile.UntrustedModelError, match="posix.system"):
        StanceModel.load(path)
    assert not (tmp_path / "marker.txt").exists()


def test_a_real_model_round_trips_through_the_allow_list(tmp_path, sentences):
    from train.config import Config
    from train.training import fit_stance_model

    for classifier in ("logreg", "linear_svm", "nbsvm", "complement_nb"):
        config = Config.from_layers(
            {
                "name": "t",
                "data": {"path": "x.csv", "labels": ["FAVOR", "AGAINST", "NONE"]},
                "model": {"classifier": classifier, "strategy": "per_target", "min_target_rows": 4},
            }
        )
        model = fit_stance_model(config, sentences)
        sha256 = modelfile.save(model, tmp_path / f"{classifier}.pkl")
        assert modelfile.file_sha256(tmp_path / f"{classifier}.pkl") == sha256
        loaded = StanceModel.load(tmp_path / f"{classifier}.pkl", expected_sha256=sha256)
        assert loaded.predict(sentences).equals(model.predict(sentences))


def test_a_file_whose_hash_differs_from_the_expected_one_is_refused_naming_both(
    tmp_path, sentences
):
    from train.config import Config
    from train.training import fit_stance_model

    model = fit_stance_model(
        Config.from_layers(
            {"name": "t", "data": {"path": "x.csv", "labels": ["FAVOR", "AGAINST", "NONE"]}}
        ),
        sentences,
    )
    recorded = modelfile.save(model, tmp_path / "model.pkl")
    model.labels = ("AGAINST", "FAVOR", "NONE")
    found = modelfile.save(model, tmp_path / "model.pkl")
    with pytest.raises(ModelError) as error:
        StanceModel.load(tmp_path / "model.pkl", expected_sha256=recorded)
    assert recorded in str(error.value) and found in str(error.value)


@pytest.mark.parametrize("documents", [False, True])
@pytest.mark.parametrize("as_folder", [False, True])
def test_predict_and_evaluate_refuse_an_untrusted_file_with_status_2(
    tmp_path, run_cli, tracking, documents, as_folder
):
    # `tracking`: evaluate opens its store before it reads the model, in tmp_path, not ./
    folder = tmp_path / "model"
    folder.mkdir()
    path, marker = _evil_file(folder)
    model = folder if as_folder else path
    table = tmp_path / "in.csv"
    table.write_text("text,target,label\nA sentence.,t,FAVOR\n")
    if documents:
        (tmp_path / "doc.txt").write_text("One sentence. Another one.")
        code, _, err = run_cli(
            "predict",
            model,
            tmp_path / "doc.txt",
            "-o",
            tmp_path / "out.csv",
            "--documents",
            "--target",
            "t",
        )
    else:
        code, _, err = run_cli("predict", model, table, "-o", tmp_path / "out.csv")
    assert (
        code == 2
        and "posix.system" in err
        and str(path) in err
        and len(err.strip().splitlines()) == 1
    )
    code, _, err = run_cli("evaluate", model, table)
    assert code == 2 and "posix.system" in err
    assert not marker.exists() and not (tmp_path / "out.csv").exists()


@pytest.fixture
def logged_sample(tracking, run_cli):
    """The sample trained into a store under tmp_path; yields the run id and its model file in the
    store.
    """
    code, out, _ = run_cli("train", SAMPLE, "--data-dir", DATA, *FAST)
    assert code == 0
    run_id = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
    stored = [p for p in Path.cwd().rglob("model.pkl") if "mlruns" in p.parts]
    assert len(stored) == 1
    return run_id, stored[0]


def test_a_logged_model_records_its_file_hash_and_loads_when_it_matches(
    logged_sample, run_cli, tmp_path
):
    import mlflow

    from train.tracking import MODEL_SHA256_TAG

    run_id, stored = logged_sample
    assert mlflow.MlflowClient().get_run(run_id).data.tags[MODEL_SHA256_TAG] == modelfile.digest(
        stored.read_bytes()
    )
    (tmp_path / "in.csv").write_text(
        "text,target\nThe strikes were lawful.,Iran's missile strikes\n"
    )
    code, _, err = run_cli(
        "predict", f"runs:/{run_id}/model", tmp_path / "in.csv", "-o", tmp_path / "out.csv"
    )
    assert code == 0, err


def test_a_rewritten_artifact_in_the_store_is_refused_by_predict_evaluate_and_register(
    logged_sample, run_cli, tmp_path
):
    run_id, stored = logged_sample
    recorded = modelfile.digest(stored.read_bytes())
    # A valid stance model, but not the one the run logged: only the hash tells them apart.
    model = StanceModel.load(stored)
    model.label_weights = {"AGAINST": 100.0}
    modelfile.save(model, stored)
    found = modelfile.digest(stored.read_bytes())
    (tmp_path / "in.csv").write_text(
        "text,target,label\nThe strikes were lawful.,Iran's missile strikes,FAVOR\n"
    )
    for argv in (
        ("predict", f"runs:/{run_id}/model", tmp_path / "in.csv", "-o", tmp_path / "out.csv"),
        ("evaluate", f"runs:/{run_id}/model", tmp_path / "in.csv"),
        ("register", run_id, "--name", "sample"),
    ):
        code, _, err = run_cli(*argv)
        assert code == 2, (argv, err)
        assert recorded in err and found in err, err
    assert not (tmp_path / "out.csv").exists()


def test_a_registered_model_is_checked_too(logged_sample, run_cli, tmp_path):
    run_id, stored = logged_sample
    assert run_cli("register", run_id, "--name", "sample", "--alias", "champion")[0] == 0
    stored.write_bytes(pickle.dumps(_WritesAFile(tmp_path / "marker.txt"), protocol=5))
    (tmp_path / "in.csv").write_text(
        "text,target\nThe strikes were lawful.,Iran's missile strikes\n"
    )
    code, _, err = run_cli(
        "predict", "models:/sample@champion", tmp_path / "in.csv", "-o", tmp_path / "out.csv"
    )
    assert code == 2 and "sha256" in err
    assert not (tmp_path / "marker.txt").exists()


def test_fetching_a_logged_model_leaves_no_temporary_copy(
    logged_sample, run_cli, tmp_path, monkeypatch
):
    run_id, _ = logged_sample
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (tmp_path / "in.csv").write_text(
        "text,target\nThe strikes were lawful.,Iran's missile strikes\n"
    )
    for _ in range(3):
        code, _, err = run_cli(
            "predict", f"runs:/{run_id}/model", tmp_path / "in.csv", "-o", tmp_path / "out.csv"
        )
        assert code == 0, err
    assert list(scratch.iterdir()) == []


class ShoutCount:
    """A feature step defined outside the packages, as a user's own would be: exclamation marks per
    row.
    """

    def __init__(self, scale=1.0):
        self.scale = scale

    def get_params(self, deep=True):
        return {"scale": self.scale}

    def set_params(self, **params):
        self.__dict__.update(params)
        return self

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def transform(self, X):
        import numpy as np

        return np.array([[text.count("!") * self.scale] for text in X["text"]])

    def get_feature_names_out(self, input_features=None):
        import numpy as np

        return np.array(["shouts"], dtype=object)


def test_a_registered_step_loads_and_an_unregistered_one_is_refused(
    tmp_path, sentences, monkeypatch
):
    from sklearn.base import BaseEstimator, TransformerMixin

    from features.pipeline import FEATURE_STEPS, register_step
    from train.config import Config
    from train.training import fit_stance_model

    shouts = type("Shouts", (ShoutCount, TransformerMixin, BaseEstimator), {"__module__": __name__})
    globals()["Shouts"] = (
        shouts  # where pickle looks it up, as for a class defined in a user's module
    )
    monkeypatch.setitem(FEATURE_STEPS, "shouts", shouts)
    model = fit_stance_model(
        Config.from_layers(
            {
                "name": "t",
                "data": {"path": "x.csv", "labels": ["FAVOR", "AGAINST", "NONE"]},
                "features": {"shouts": {}},
            },
            [],
        ),
        sentences,
    )
    model.save(tmp_path / "model.pkl")
    assert (
        StanceModel.load(tmp_path / "model.pkl").predict(sentences).equals(model.predict(sentences))
    )
    del FEATURE_STEPS["shouts"]
    with pytest.raises(modelfile.UntrustedModelError, match="Shouts"):
        StanceModel.load(tmp_path / "model.pkl")
    register_step("shouts", shouts)
    assert isinstance(StanceModel.load(tmp_path / "model.pkl"), StanceModel)
