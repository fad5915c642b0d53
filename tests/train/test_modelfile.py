"""A model is data: a folder the loader builds a model from, part by part, never a file it runs.

The hostile cases run `stance predict` in a fresh Python process, so that a crash would show as
a signal and the modules the refused file made Python import can be listed.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from train import modelfile
from train.config import Config
from train.errors import ModelError
from train.models import Cascade, StanceModel
from train.training import fit_stance_model

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "experiments" / "sample.toml")
DATA = str(REPO / "data")
FAST = ("--set", "features.char=false", "--set", "features.sentiment=false")
LABELS = ["FAVOR", "AGAINST", "NONE"]


def _fit(sentences, **model) -> StanceModel:
    layers = {"name": "t", "data": {"path": "x.csv", "labels": LABELS}, "model": model}
    return fit_stance_model(Config.from_layers(layers), sentences)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "model",
    [
        {"classifier": "logreg"},
        {"classifier": "linear_svm", "strategy": "per_target", "min_target_rows": 4},
        {"classifier": "linear_svm", "clf": {"calibration": "isotonic"}},
        {"classifier": "linear_svm", "clf": {"calibration": "softmax"}},
        {"classifier": "nbsvm"},
        {"classifier": "complement_nb", "strategy": "shared_per_target"},
        {"classifier": "multinomial_nb"},
        {"classifier": "bernoulli_nb"},
    ],
    ids=lambda model: "-".join(str(v) for v in model.values()),
)
def test_every_classifier_and_strategy_predicts_the_same_bits_after_loading(
    tmp_path, sentences, model
):
    fitted = _fit(sentences, **model)
    fingerprint = modelfile.save(fitted, tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        modelfile.ARRAYS,
        modelfile.MANIFEST,
    ]
    loaded = StanceModel.load(tmp_path / "model", expected_sha256=fingerprint)
    assert loaded.predict(sentences).equals(fitted.predict(sentences))
    assert loaded.labels == fitted.labels and loaded.config == fitted.config
    # Saved again, the same bytes: the format has one way to write a model.
    assert modelfile.save(loaded, tmp_path / "again") == fingerprint


def test_a_cascade_and_a_model_with_a_prior_load_as_they_were(tmp_path, sentences):
    prior = _fit(sentences)
    prior.save(tmp_path / "prior")
    layers = {
        "name": "t",
        "data": {"path": "x.csv", "labels": LABELS},
        "model": {"init_from": str(tmp_path / "prior"), "classifier": "linear_svm"},
    }
    started = fit_stance_model(Config.from_layers(layers), sentences)
    cascade = Cascade(prior, started, threshold=0.6)
    cascade.save(tmp_path / "cascade")
    loaded = StanceModel.load(tmp_path / "cascade")
    assert isinstance(loaded, Cascade)
    assert loaded.predict(sentences).equals(cascade.predict(sentences))
    manifest = (tmp_path / "cascade" / modelfile.MANIFEST).read_text()
    assert '"kind":"PriorModel"' in manifest  # the prior travels inside, as data


def test_an_array_two_parts_share_is_stored_once_and_shared_again(tmp_path, sentences):
    fitted = _fit(sentences, classifier="linear_svm", clf={"calibration": "softmax"})
    clf = fitted.estimator.named_steps["clf"]
    assert clf.coef_ is clf.model_.coef_
    loaded = StanceModel.load(fitted.save(tmp_path / "model")).estimator.named_steps["clf"]
    assert loaded.coef_ is loaded.model_.coef_


def test_the_loader_imports_no_pickle_and_no_module_by_name():
    """The model format's module imports no pickle, joblib or importlib: there is nothing that
    could turn a name in a file into code."""
    import ast

    tree = ast.parse((REPO / "train" / "modelfile.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported and not imported & {"pickle", "joblib", "importlib", "dill", "cloudpickle"}


def test_a_registered_step_saves_once_it_declares_its_state(tmp_path, sentences, monkeypatch):
    from sklearn.base import BaseEstimator, TransformerMixin

    from features.pipeline import FEATURE_STEPS
    from features.state import Float

    class Shouts(TransformerMixin, BaseEstimator):
        def __init__(self, scale=1.0):
            self.scale = scale

        def fit(self, X, y=None):
            self.mean_ = float(X["text"].str.count("!").mean())
            return self

        def transform(self, X):
            return np.array([[t.count("!") * self.scale - self.mean_] for t in X["text"]])

        def get_feature_names_out(self, input_features=None):
            return np.array(["shouts"], dtype=object)

    monkeypatch.setitem(FEATURE_STEPS, "shouts", Shouts)
    layers = {
        "name": "t",
        "data": {"path": "x.csv", "labels": LABELS},
        "features": {"shouts": {}},
    }
    fitted = fit_stance_model(Config.from_layers(layers, []), sentences)
    with pytest.raises(ModelError, match=r"holds mean_, which its fitted_state does not declare"):
        fitted.save(tmp_path / "undeclared")
    monkeypatch.setattr(Shouts, "fitted_state", {"mean_": Float()}, raising=False)
    loaded = StanceModel.load(fitted.save(tmp_path / "model"))
    assert loaded.predict(sentences).equals(fitted.predict(sentences))
    monkeypatch.delitem(FEATURE_STEPS, "shouts")
    with pytest.raises(ModelError, match="unknown kind 'Shouts'"):
        StanceModel.load(tmp_path / "model")


# --------------------------------------------------------------------------- hostile files

# Run in a fresh process: `stance predict`, then the project and scikit-learn modules it imported
# go to a file, and the exit status is the process's.
DRIVER = """
import json, sys
from train.cli import main
code = main(sys.argv[2:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("train", "features", "sklearn"))
open(sys.argv[1], "w").write(json.dumps(loaded))
sys.exit(code)
"""


def _predict_in_a_process(model: Path, tmp_path: Path) -> tuple[int, str, set[str]]:
    table = tmp_path / "in.csv"
    table.write_text("text,target\nThe strikes were lawful.,Iran's missile strikes\n")
    modules = tmp_path / "modules.json"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            DRIVER,
            modules,
            "predict",
            model,
            table,
            "-o",
            tmp_path / "out.csv",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    imported = set(json.loads(modules.read_text())) if modules.exists() else set()
    modules.unlink(missing_ok=True)
    return result.returncode, result.stderr, imported


@pytest.fixture(scope="module")
def good_model(tmp_path_factory, model_path) -> tuple[Path, set[str]]:
    """A copy of the sample model, and the modules predicting with it imports."""
    folder = tmp_path_factory.mktemp("good")
    code, err, imported = _predict_in_a_process(model_path, folder)
    assert code == 0, err
    return model_path, imported


def _tampered(source: Path, target: Path, change, rehash: bool = True) -> Path:
    """A copy of the model at ``source`` whose manifest ``change(manifest, arrays)`` edits in
    place; with ``rehash`` the manifest records the edited arrays' sha256, so the checks behind
    the hash are the ones tried."""
    manifest = json.loads((source / modelfile.MANIFEST).read_text())
    arrays = safetensors.numpy.load((source / modelfile.ARRAYS).read_bytes())
    change(manifest, arrays)
    target.mkdir()
    data = safetensors.numpy.save(arrays)
    (target / modelfile.ARRAYS).write_bytes(data)
    if rehash:
        manifest["files"][modelfile.ARRAYS] = modelfile._sha256(data)
    (target / modelfile.MANIFEST).write_text(json.dumps(manifest))
    return target


def _parts(tree):
    """Every part of a manifest's model tree, depth first."""
    if isinstance(tree, dict):
        if "kind" in tree:
            yield tree
        for value in tree.values():
            yield from _parts(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _parts(value)


def _part(manifest, kind: str) -> dict:
    return next(part for part in _parts(manifest["model"]) if part["kind"] == kind)


def _rename_kind(kind: str, new: str):
    def change(manifest, arrays):
        _part(manifest, kind)["kind"] = new

    return change


def _set(kind: str, where: str, key: str, value):
    def change(manifest, arrays):
        _part(manifest, kind)[where][key] = value

    return change


def _drop_state(kind: str, key: str):
    def change(manifest, arrays):
        del _part(manifest, kind)["state"][key]

    return change


def _replace_array(kind: str, key: str, make):
    def change(manifest, arrays):
        name = _part(manifest, kind)["state"][key]["array"]
        arrays[name] = make(arrays[name])

    return change


def _corrupt_arrays_only(manifest, arrays):
    first = sorted(arrays)[0]
    arrays[first] = arrays[first] + 1


HOSTILE = {
    "unknown step kind": (
        _rename_kind("WordNgrams", "WordGrams"),
        True,
        "unknown kind 'WordGrams'",
    ),
    "an ensemble class": (
        _rename_kind("LogisticRegression", "StackingClassifier"),
        True,
        "unknown kind 'StackingClassifier'",
    ),
    "a module as kind": (_rename_kind("WordNgrams", "train.serving"), True, "unknown kind"),
    "a function as kind": (_rename_kind("Tokenizer", "os.system"), True, "unknown kind"),
    "a joblib cache folder": (
        _set("Pipeline", "params", "memory", "/tmp/planted"),
        True,
        "Pipeline takes no parameter 'memory'",
    ),
    "worker processes": (
        _set("FeatureUnion", "params", "n_jobs", 64),
        True,
        "FeatureUnion takes no parameter 'n_jobs'",
    ),
    "a part where a plain value belongs": (
        _set("LogisticRegression", "params", "C", {"kind": "Tokenizer", "params": {}}),
        True,
        "a parameter must be a plain value",
    ),
    "wrong dtype": (
        _replace_array("LogisticRegression", "coef_", lambda a: a.astype(np.float32)),
        True,
        "expected dtype float64, found float32",
    ),
    "wrong number of dimensions": (
        _replace_array("LogisticRegression", "coef_", lambda a: a.ravel()),
        True,
        "expected 2 dimension(s)",
    ),
    "shapes that disagree": (
        _replace_array("LogisticRegression", "coef_", lambda a: a[:, :-1].copy()),
        True,
        "coef_ has",
    ),
    "an extra state key": (
        _set("LogisticRegression", "state", "predict_proba", "__reduce__"),
        True,
        "LogisticRegression keeps no 'predict_proba'",
    ),
    "a missing state key": (_drop_state("LogisticRegression", "coef_"), True, "lacks coef_"),
    "a string where a number belongs": (
        _set("LogisticRegression", "state", "n_features_in_", "12"),
        True,
        "expected an integer",
    ),
    "a parameter the estimator refuses": (
        _set("LogisticRegression", "params", "C", "10"),
        True,
        "refuses its parameters",
    ),
    "a setting outside its choices": (
        _set("_CalibratedClassifier", "params", "method", "predict"),
        True,
        "expected one of",
    ),
    "arrays that do not match the manifest": (
        _corrupt_arrays_only,
        False,
        "does not match the sha256 its manifest records",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_model_folder_ends_with_status_2_and_one_line(
    tmp_path, good_model, case, sentences
):
    path, allowed = good_model
    change, rehash, message = HOSTILE[case]
    if case == "a setting outside its choices":
        # The sample model has no calibrated SVM: use one that has.
        path = _fit(sentences, classifier="linear_svm").save(tmp_path / "svm")
    bad = _tampered(path, tmp_path / "bad", change, rehash)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, err, imported = _predict_in_a_process(bad, tmp_path)
    assert code == 2, err  # a status, not a signal (negative) or a traceback (1)
    assert message in err and len(err.strip().splitlines()) == 1, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == sorted([*before, Path("in.csv")]) or after == before  # nothing written
    assert imported <= allowed, imported - allowed  # nothing the file named was imported


def test_an_object_dtype_array_is_refused(tmp_path, model_path):
    """safetensors has no object dtype: a header that claims one is a broken file, said in one
    line."""
    data = (model_path / modelfile.ARRAYS).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    key = next(k for k in header if k != "__metadata__")
    header[key]["dtype"] = "O"
    text = json.dumps(header).encode()
    bad = tmp_path / "bad"
    bad.mkdir()
    arrays = len(text).to_bytes(8, "little") + text + data[8 + size :]
    (bad / modelfile.ARRAYS).write_bytes(arrays)
    manifest = json.loads((model_path / modelfile.MANIFEST).read_text())
    manifest["files"][modelfile.ARRAYS] = modelfile._sha256(arrays)
    (bad / modelfile.MANIFEST).write_text(json.dumps(manifest))
    code, err, _ = _predict_in_a_process(bad, tmp_path)
    assert code == 2 and "is not a valid safetensors file" in err
    assert len(err.strip().splitlines()) == 1


FUZZ = """
import json, shutil, sys
from pathlib import Path
from hypothesis import HealthCheck, given, settings, strategies as st
from train import modelfile
from train.errors import ModelError

good, scratch = Path(sys.argv[1]), Path(sys.argv[2])
manifest = (good / modelfile.MANIFEST).read_bytes()
arrays = (good / modelfile.ARRAYS).read_bytes()

def load(manifest_bytes, arrays_bytes, rehash):
    folder = scratch / "m"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    if rehash:
        try:
            tree = json.loads(manifest_bytes)
            tree["files"][modelfile.ARRAYS] = modelfile._sha256(arrays_bytes)
            manifest_bytes = json.dumps(tree).encode()
        except Exception:
            pass
    (folder / modelfile.MANIFEST).write_bytes(manifest_bytes)
    (folder / modelfile.ARRAYS).write_bytes(arrays_bytes)
    try:
        modelfile.load(folder)
    except ModelError as error:
        assert "\\n" not in str(error), str(error)

def damage(data, draw):
    cut = draw(st.integers(0, len(data)))
    kind = draw(st.sampled_from(["truncate", "flip", "splice"]))
    if kind == "truncate":
        return data[:cut]
    if kind == "flip":
        if not data:
            return data
        at = min(cut, len(data) - 1)
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]
    return data[:cut] + draw(st.binary(max_size=64)) + data[cut:]

fast = settings(max_examples=int(sys.argv[3]), deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

@fast
@given(st.data())
def bytes_of_either_file(data):
    which = data.draw(st.sampled_from(["manifest", "arrays"]))
    draw = data.draw
    if which == "manifest":
        load(damage(manifest, draw), arrays, rehash=False)
    else:
        load(manifest, damage(arrays, draw), rehash=True)

def json_edits():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True), st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=12)

def paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from paths(value, prefix + (i,))

tree = json.loads(manifest)
every_path = [p for p in paths(tree["model"]) if p]

@fast
@given(st.sampled_from(every_path), json_edits(), st.booleans())
def values_in_the_manifest(path, value, delete):
    edited = json.loads(manifest)
    spot = edited["model"]
    for step in path[:-1]:
        spot = spot[step]
    if delete and isinstance(spot, dict):
        del spot[path[-1]]
    else:
        spot[path[-1]] = value
    load(json.dumps(edited).encode(), arrays, rehash=False)

bytes_of_either_file()
values_in_the_manifest()
print("fuzzed")
"""


def test_damaged_and_edited_model_files_only_ever_raise_one_line(tmp_path, model_path):
    """Hypothesis truncates, flips and splices the two files' bytes and puts any JSON value at any
    place of the manifest; every outcome is a model or one ModelError line, in a process that
    would die by a signal if the loader could be made to crash."""
    result = subprocess.run(
        [sys.executable, "-c", FUZZ, model_path, tmp_path, "150"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    assert result.returncode == 0 and "fuzzed" in result.stdout, result.stderr[-3000:]


# --------------------------------------------------------------------------- pickles


class _WritesAFile:
    """What an attacker pickles: unpickling it calls os.system, which writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.marker}",)


def _old_model(folder: Path, payload) -> tuple[Path, Path]:
    marker = folder / "marker.txt"
    path = folder / "model.pkl"
    path.write_bytes(pickle.dumps(payload(marker), protocol=5))
    return path, marker


def test_a_pickle_is_never_read_without_trust_pickle(tmp_path, run_cli, tracking):
    path, marker = _old_model(tmp_path, _WritesAFile)
    (tmp_path / "in.csv").write_text("text,target,label\nA sentence.,t,FAVOR\n")
    for argv in (
        ("predict", path, tmp_path / "in.csv", "-o", tmp_path / "out.csv"),
        ("evaluate", tmp_path, tmp_path / "in.csv"),
        ("convert", path, tmp_path / "new"),
    ):
        code, _, err = run_cli(*argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "--trust-pickle" in err
    assert not marker.exists() and not (tmp_path / "new").exists()


def test_convert_with_trust_pickle_still_reads_through_the_old_allow_list(tmp_path, run_cli):
    path, marker = _old_model(tmp_path, _WritesAFile)
    code, _, err = run_cli("convert", path, tmp_path / "new", "--trust-pickle")
    assert code == 2 and "posix.system" in err and not marker.exists()


def test_convert_writes_a_model_that_predicts_as_the_pickle_did(tmp_path, run_cli, sentences):
    from train import pickled

    fitted = _fit(sentences, classifier="nbsvm")
    (tmp_path / "old.pkl").write_bytes(pickle.dumps(fitted, protocol=5))
    code, out, err = run_cli("convert", tmp_path / "old.pkl", tmp_path / "new", "--trust-pickle")
    assert code == 0, err
    fingerprint = out.split("sha256 of its manifest: ")[1].rstrip(")\n")
    loaded = StanceModel.load(tmp_path / "new", expected_sha256=fingerprint)
    old = pickled.load(tmp_path / "old.pkl")
    assert loaded.predict(sentences).equals(old.predict(sentences))


# --------------------------------------------------------------------------- the six findings


@pytest.fixture
def logged_sample(tracking, run_cli):
    """The sample trained into a store under tmp_path: the run id and its model folder there."""
    code, out, _ = run_cli("train", SAMPLE, "--data-dir", DATA, *FAST)
    assert code == 0
    run_id = next(line.split(": ")[1] for line in out.splitlines() if line.startswith("run_id: "))
    stored = [p.parent for p in Path.cwd().rglob(modelfile.MANIFEST) if "models" in p.parts]
    assert len(stored) == 1
    return run_id, stored[0]


def test_finding_1_and_2_no_cache_folder_and_no_file_written_but_the_output(tmp_path, good_model):
    """Code ran, or inputs were copied, through a joblib cache folder a pickle gave a Pipeline:
    the format has no such parameter, and a good model writes nothing but the output."""
    path, _ = good_model
    before = set(tmp_path.rglob("*"))
    code, err, _ = _predict_in_a_process(path, tmp_path)
    assert code == 0, err
    written = {p.relative_to(tmp_path) for p in set(tmp_path.rglob("*")) - before}
    assert written == {Path("in.csv"), Path("out.csv")}
    bad = _tampered(path, tmp_path / "bad", _set("Pipeline", "params", "memory", str(tmp_path)))
    (tmp_path / "elsewhere").mkdir()
    code, err, _ = _predict_in_a_process(bad, tmp_path / "elsewhere")
    assert code == 2 and "takes no parameter 'memory'" in err


def test_finding_3_a_pickle_given_as_init_from_is_refused(tmp_path, run_cli, tracking):
    path, marker = _old_model(tmp_path, _WritesAFile)
    code, _, err = run_cli(
        "train", SAMPLE, "--data-dir", DATA, *FAST, "--set", f"model.init_from={path}"
    )
    assert code == 2 and "--trust-pickle" in err and not marker.exists()


def test_finding_4_a_numpy_dtype_pickle_is_never_unpickled(tmp_path, run_cli):
    import numpy

    (tmp_path / "model.pkl").write_bytes(pickle.dumps(numpy.dtype("float64"), protocol=5))
    code, _, err = run_cli("convert", tmp_path / "model.pkl", tmp_path / "new")
    assert code == 2 and "--trust-pickle" in err


def test_finding_5_served_and_fetched_models_are_checked_against_their_run(
    logged_sample, run_cli, tmp_path
):
    import mlflow

    run_id, stored = logged_sample
    recorded = modelfile.manifest_sha256(stored)
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")  # the untouched model serves
    assert served.predict(_rows())["label"].iloc[0] in LABELS
    assert "matches the run's fingerprint" in run_cli("show", run_id)[1]
    # A valid model, but not the one trained: only the fingerprint tells them apart.
    model = StanceModel.load(stored)
    model.label_weights = {"AGAINST": 100.0}
    found = modelfile.save(model, stored)
    with pytest.raises(ModelError, match=recorded):
        mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    (tmp_path / "in.csv").write_text("text,target,label\nThe strikes were lawful.,t,FAVOR\n")
    for argv in (
        ("predict", f"runs:/{run_id}/model", tmp_path / "in.csv", "-o", tmp_path / "out.csv"),
        ("evaluate", f"runs:/{run_id}/model", tmp_path / "in.csv"),
        ("register", run_id, "--name", "sample"),
    ):
        code, _, err = run_cli(*argv)
        assert code == 2 and recorded in err and found in err, (argv, err)
    assert "MISMATCH" in run_cli("show", run_id)[1]
    # Deleting the run's tag no longer turns the check off: the model is refused.
    mlflow.MlflowClient().delete_tag(run_id, modelfile_tag())
    code, _, err = run_cli(
        "predict", f"runs:/{run_id}/model", tmp_path / "in.csv", "-o", tmp_path / "out.csv"
    )
    assert code == 2 and "recorded no fingerprint" in err
    with pytest.raises(ModelError, match="recorded no fingerprint"):
        mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert "NO FINGERPRINT" in run_cli("show", run_id)[1]
    assert not (tmp_path / "out.csv").exists()


def modelfile_tag() -> str:
    from train import schema

    return schema.MODEL_FILE_SHA256


def _rows():
    import pandas as pd

    return pd.DataFrame({"text": ["The strikes were lawful."], "target": ["Iran's strikes"]})


def test_finding_6_a_file_naming_modules_imports_none_of_them(tmp_path, good_model):
    path, allowed = good_model
    for i, name in enumerate(["train.serving", "sklearn.utils._testing", "features.pipeline"]):
        bad = _tampered(path, tmp_path / f"bad{i}", _rename_kind("Pipeline", name))
        (tmp_path / f"run{i}").mkdir()
        code, err, imported = _predict_in_a_process(bad, tmp_path / f"run{i}")
        assert code == 2 and "unknown kind" in err
        assert "train.serving" not in imported and "sklearn.utils._testing" not in imported
        assert imported <= allowed


def test_a_logged_model_loads_when_it_matches_and_leaves_no_temporary_copy(
    logged_sample, run_cli, tmp_path, monkeypatch
):
    import tempfile

    run_id, _ = logged_sample
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (tmp_path / "in.csv").write_text("text,target\nThe strikes were lawful.,Iran's strikes\n")
    for _ in range(2):
        code, _, err = run_cli(
            "predict", f"runs:/{run_id}/model", tmp_path / "in.csv", "-o", tmp_path / "out.csv"
        )
        assert code == 0, err
    assert list(scratch.iterdir()) == []
