"""Progress bars: drawn with a total and an ETA when stderr is a terminal, absent when piped.
Each command runs in a fresh process whose stderr is a pseudo-terminal (or a pipe)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Beside the datasets: ../shared/data and ../shared/documents.
DATA_DIR = Path(os.environ.get("STANCE_DATA_DIR", REPO.parent / "shared" / "data"))
DOCUMENTS = (REPO / DATA_DIR).parent / "documents"
# tqdm's "DONE/TOTAL [ELAPSED<REMAINING": a total and an ETA.
TOTAL_AND_ETA = re.compile(r"[\d.]+[kMG]?i?B?/[\d.]+[kMG]?i?B?(?: \w+)? \[\d\d:\d\d<\d\d:\d\d")


def _stderr_of(args: list[str], cwd: Path, terminal: bool) -> tuple[int, str]:
    """Exit status and stderr of `stance ARGS`, stderr a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "train.cli", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not terminal:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        return done.returncode, done.stderr
    leader, follower = pty.openpty()
    # A terminal of 40 lines of 120 columns: a new pty has none, and tqdm draws nothing in it.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=follower, close_fds=True
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done with it
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def corpus(tmp_path) -> Path:
    rows = [f"{i},Sentence {i} on the strikes and their critics.,Iran" for i in range(20_000)]
    path = tmp_path / "in.csv"
    path.write_text("id,text,target\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
def test_predict_shows_a_total_and_an_eta_on_a_terminal_only(
    model_path, corpus, tmp_path, terminal
):
    args = ["predict", model_path, corpus, "-o", tmp_path / "out.csv", "--jobs", "1"]
    code, err = _stderr_of(args + ["--chunk-size", "2000"], tmp_path, terminal)
    assert code == 0, err
    if terminal:
        assert TOTAL_AND_ETA.search(err), err
        assert "loading the model" in err and "20,000 rows, " in err
    else:
        assert not TOTAL_AND_ETA.search(err) and "\r" not in err
        assert err.strip().splitlines()[-1].startswith("rows read 20,000, predicted 20,000")


def test_predict_documents_counts_documents_against_their_number(model_path, tmp_path):
    if not DOCUMENTS.is_dir():
        pytest.fail(f"{DOCUMENTS} is missing: the two articles come with ../shared")
    args = [
        "predict", model_path, DOCUMENTS, "--documents", "--target", "Iran's missile strikes",
        "-o", tmp_path / "out.csv",
    ]  # fmt: skip
    code, err = _stderr_of(args, tmp_path, terminal=True)
    assert code == 0, err
    assert re.search(r"2/2 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+ documents/s, \d+ sentences\]", err), err


SAMPLE = REPO / "experiments" / "sample.toml"
FAST = ["--set", "features.char=false", "--set", "features.sentiment=false"]


TRAIN = (["train", SAMPLE, "--data-dir", REPO / "data", *FAST], r"5/5 \[.*stages")
CV = (["cv", SAMPLE, "--data-dir", REPO / "data", "--folds", "3", *FAST], r"3/3 \[.*folds")
SEARCH = (
    ["search", SAMPLE, "--data-dir", REPO / "data", "--trials", "2", *FAST],
    r"2/2 \[.*trials",
)


# Whether a bar is drawn is decided once for every command (stderr is a terminal or not), so
# the piped case is run for one command only.
@pytest.mark.parametrize(
    "command, done, terminal",
    [(*TRAIN, True), (*CV, True), (*SEARCH, True), (*TRAIN, False)],
    ids=["terminal-train", "terminal-cv", "terminal-search", "piped-train"],
)
def test_training_commands_count_their_stages_folds_or_trials(
    tmp_path, monkeypatch, command, done, terminal
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    code, err = _stderr_of(command, tmp_path, terminal)
    assert code == 0, err
    if terminal:
        assert TOTAL_AND_ETA.search(err) and re.search(done, err), err
    else:
        assert not TOTAL_AND_ETA.search(err) and "\r" not in err, err


def test_select_shows_the_prediction_bar_of_its_corpus(model_path, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    args = ["select", model_path, corpus, "-n", "5", "-o", tmp_path / "pick.csv", "--jobs", "1"]
    code, err = _stderr_of(args, tmp_path, terminal=True)
    assert code == 0, err
    assert TOTAL_AND_ETA.search(err) and "20,000 rows" in err, err
