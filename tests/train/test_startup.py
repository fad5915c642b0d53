"""Common mistakes are reported before the heavy libraries are imported: each case runs
`stance` in a fresh process and records which of them were imported when it answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "experiments" / "sample.toml"
DATA = REPO / "data"
HEAVY = ("sklearn", "mlflow", "onnxruntime", "pandas", "scipy", "optuna", "pyarrow")
# Runs `stance ARGS` and prints the exit status and the heavy modules it imported, as JSON.
PROBE = (
    "import json, sys\n"
    "from train.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
)


def stance_probe(*args, cwd: Path) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # this checkout, from any folder
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, imported = json.loads(done.stdout.strip().splitlines()[-1])
    return code, imported, done.stderr


@pytest.fixture
def inputs(tmp_path) -> Path:
    (tmp_path / "typo.toml").write_text(SAMPLE.read_text() + "\n[features.wrod]\nmin_df = 2\n")
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "sentences.csv").write_text(
        "id,sentense,target,stance,confidence\n1,The strikes were lawful.,Iran,FAVOR,1.0\n"
    )
    (tmp_path / "no_text.csv").write_text("id,sentence\n1,The strikes were lawful.\n")
    return tmp_path


MISTAKES = {
    "an experiment file that does not exist": (
        ["train", "{tmp}/nope.toml"],
        "nope.toml",
    ),
    "a typo in the experiment": (["train", "{tmp}/typo.toml", "--data-dir", DATA], "wrod"),
    "a classifier that does not exist": (
        ["train", SAMPLE, "--data-dir", DATA, "--set", 'model.classifier="logreq"'],
        "logreq",
    ),
    "a data root that does not exist": (
        ["train", SAMPLE, "--data-dir", "{tmp}/nowhere"],
        "nowhere",
    ),
    "a data file without its text column": (
        ["train", SAMPLE, "--data-dir", "{tmp}"],
        "missing column 'sentence'",
    ),
    "a cv of a data file without its text column": (
        ["cv", SAMPLE, "--data-dir", "{tmp}"],
        "missing column 'sentence'",
    ),
    "a search of a data file without its text column": (
        ["search", SAMPLE, "--data-dir", "{tmp}", "--trials", "1"],
        "missing column 'sentence'",
    ),
    "a prediction input that does not exist": (
        ["predict", "{model}", "{tmp}/nope.csv", "-o", "{tmp}/out.csv"],
        "nope.csv",
    ),
    "a prediction input without its text column": (
        ["predict", "{model}", "{tmp}/no_text.csv", "-o", "{tmp}/out.csv"],
        "no column 'text'",
    ),
    "a model folder that does not exist": (
        ["predict", "{tmp}/no-model", "{tmp}/no_text.csv", "-o", "{tmp}/out.csv"],
        "no-model",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_common_mistake_is_reported_before_the_heavy_imports(inputs, model_path, mistake):
    arguments, named = MISTAKES[mistake]
    argv = [str(a).format(tmp=inputs, model=model_path) for a in arguments]
    code, imported, err = stance_probe(*argv, cwd=inputs)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert named in err
    assert imported == [], f"imported {imported} before saying: {err}"


def test_the_light_name_lists_match_the_registries():
    # The names checked before scikit-learn is imported must be the registries' own.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from features.pipeline import FEATURE_STEPS\n"
            "from features.steps import BUILTIN_STEPS\n"
            "from train.classifiers import CLASSIFIERS\n"
            "from train.config import BUILTIN_CLASSIFIERS\n"
            "print(sorted(FEATURE_STEPS) == sorted(BUILTIN_STEPS), "
            "sorted(CLASSIFIERS) == sorted(BUILTIN_CLASSIFIERS))",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["True", "True"]
