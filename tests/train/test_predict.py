"""`stance predict`: formats, bad input, counts, atomic output, resume, model URIs, stdin/stdout,
documents.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from train import predict as predict_module
from train import ranges, workers
from train.cli import main
from train.config import Config
from train.data import load_dataset, split_dataset
from train.errors import StanceError
from train.models import (
    StanceModel,
    build_model,
    fit_model,
    needs_target,
    runtime_versions,
)
from train.predict import PredictOptions, predict_file
from train.tables import ColumnNames
from train.training import fit_stance_model

REPO = Path(__file__).resolve().parents[2]
TARGET = "Iran's missile strikes"


@pytest.fixture
def sentences_csv(tmp_path) -> Path:
    frame = pd.read_csv(REPO / "data" / "sample" / "sentences.csv").rename(
        columns={"sentence": "text"}
    )
    path = tmp_path / "in.csv"
    frame[["id", "text", "target"]].to_csv(path, index=False)
    return path


def run(model, source, output, **options):
    return predict_file(
        str(model), str(source), str(output), PredictOptions(jobs=1, **options), log=lambda m: None
    )


def test_csv_in_csv_out_keeps_ids_and_adds_label_and_probabilities(
    model_path, sentences_csv, tmp_path
):
    summary = run(model_path, sentences_csv, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    source = pd.read_csv(sentences_csv)
    assert list(out.columns) == ["id", "label", "proba_FAVOR", "proba_AGAINST", "proba_NONE"]
    assert out["id"].tolist() == source["id"].tolist()
    assert (summary.rows_read, summary.predicted, summary.rejected) == (418, 418, 0)
    assert not (tmp_path / "out.csv.parts").exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("fmt_in", ["csv", "tsv", "jsonl", "parquet"])
@pytest.mark.parametrize("fmt_out", ["csv", "tsv", "jsonl", "parquet"])
def test_formats_round_trip(model_path, sentences_csv, tmp_path, fmt_in, fmt_out):
    frame = pd.read_csv(sentences_csv).head(40)
    source = tmp_path / f"in.{fmt_in}"
    {
        "csv": lambda: frame.to_csv(source, index=False),
        "tsv": lambda: frame.to_csv(source, sep="\t", index=False),
        "jsonl": lambda: frame.to_json(source, orient="records", lines=True),
        "parquet": lambda: frame.to_parquet(source),
    }[fmt_in]()
    run(model_path, source, tmp_path / f"out.{fmt_out}", keep_text=True, chunk_size=15)
    reader = {
        "csv": pd.read_csv,
        "tsv": lambda p: pd.read_csv(p, sep="\t"),
        "jsonl": lambda p: pd.read_json(p, lines=True),
        "parquet": pd.read_parquet,
    }
    out = reader[fmt_out](tmp_path / f"out.{fmt_out}")
    assert out["id"].astype(str).tolist() == frame["id"].tolist()
    assert out["text"].tolist() == frame["text"].tolist()
    reference = StanceModel.load(model_path).predict(frame)
    assert out["label"].tolist() == reference["label"].tolist()
    pd.testing.assert_series_equal(
        out["proba_FAVOR"], reference["proba_FAVOR"], check_names=False, rtol=1e-12
    )


def test_bad_rows_go_to_rejects_with_line_and_reason(model_path, tmp_path):
    target = TARGET.encode()
    lines = [
        b"id,text,target",
        b"a,The strikes were reckless," + target,
        b"b,   ," + target,  # empty text
        b"c,The strikes were lawful,",  # missing target
        b"d,caf\xe9 strikes," + target,  # latin-1, not UTF-8
        b"e,too,many,fields," + target,  # malformed
        b"f,A fine point," + target,
    ]
    path = tmp_path / "in.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    summary = run(model_path, path, tmp_path / "out.csv", chunk_size=2)
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects["line"].tolist() == [3, 4, 5, 6]
    assert rejects["reason"].tolist() == [
        "empty text",
        "missing target",
        "undecodable bytes: the line is not valid UTF-8",
        "malformed line: expected 3 fields, found 5",
    ]
    assert (summary.rows_read, summary.predicted, summary.rejected) == (6, 2, 4)
    assert pd.read_csv(tmp_path / "out.csv")["id"].tolist() == ["a", "f"]


def test_jsonl_bad_lines_are_rejected_with_the_line_itself(model_path, tmp_path):
    good = json.dumps({"text": "The strikes were reckless", "target": TARGET})
    nested = (
        '{"text":["The strikes",  "were reckless"], "target": ' + json.dumps(TARGET) + "}"
    )  # spaced as no dumps() would
    lines = [
        b"not json",
        good.encode(),
        b"[1, 2]",
        b"\xff" + good.encode(),
        json.dumps({"target": TARGET}).encode(),
        nested.encode(),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    # A bad first line does not hide the columns: the first parsed record names them.
    summary = run(model_path, path, tmp_path / "out.csv")
    rejects = pd.read_csv(tmp_path / "out.rejects.csv", keep_default_na=False)
    assert rejects["line"].tolist() == [1, 3, 4, 5, 6]
    assert rejects["reason"].tolist() == [
        "malformed JSON: Expecting value at column 1",
        "malformed line: expected a JSON object, found list",
        "undecodable bytes: the line is not valid UTF-8",
        "empty text",
        "malformed line: 'text' holds an array; expected a string or a number",
    ]
    # Lines that could not be parsed keep their own text in the rejects, the only copy of stdin's.
    assert rejects["text"].tolist()[:2] == ["not json", "[1, 2]"] and rejects["text"][2].endswith(
        good
    )
    assert rejects["text"][4] == nested
    assert (summary.rows_read, summary.predicted, summary.rejected) == (6, 1, 5)


def test_jsonl_ids_are_read_per_line_even_when_the_first_line_has_none(model_path, tmp_path):
    records = [
        {"text": "The strikes were reckless", "target": TARGET},
        {"id": "b", "text": "A lawful reply", "target": TARGET},
        {"text": "Calm", "target": TARGET},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    run(model_path, path, tmp_path / "out.csv")
    assert pd.read_csv(tmp_path / "out.csv", dtype=str)["id"].tolist() == ["1", "b", "3"]


def test_jsonl_key_missing_from_the_first_record_is_looked_for_further_on(
    model_path, tmp_path, capsys
):
    records = [
        {"text": "No target here"},
        {"text": "The strikes were reckless", "target": TARGET},
        {"text": "A lawful reply", "target": TARGET},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    summary = run(model_path, path, tmp_path / "out.csv", chunk_size=2)
    assert (summary.rows_read, summary.predicted, summary.rejected) == (3, 2, 1)
    assert pd.read_csv(tmp_path / "out.rejects.csv")["reason"].tolist() == ["missing target"]
    # A key no line carries is still an error before any output, saying how far it looked.
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(path),
                "-o",
                str(tmp_path / "x.csv"),
                "--jobs",
                "1",
                "--target-column",
                "topic",
            ]
        )
        == 2
    )
    assert (
        "no line of the first 3 has the key 'topic'; found keys ['text', 'target']"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"", "is empty"), (b"oops\n[1]\n", "no line holds a JSON object (line 1: malformed JSON")],
)
def test_jsonl_without_any_record_exits_2_without_output(
    model_path, tmp_path, capsys, content, message
):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    assert (
        main(
            ["predict", str(model_path), str(path), "-o", str(tmp_path / "out.csv"), "--jobs", "1"]
        )
        == 2
    )
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [path]


def test_one_target_for_every_row(model_path, tmp_path):
    path = tmp_path / "in.csv"
    pd.DataFrame({"text": ["The strikes were reckless", "A lawful reply"]}).to_csv(
        path, index=False
    )
    run(model_path, path, tmp_path / "out.csv", target=TARGET)
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["id"].tolist() == [2, 3]  # no id column: the line number


def test_a_target_for_every_row_and_a_target_column_are_not_both_taken(
    model_path, sentences_csv, tmp_path, capsys
):
    args = [
        "predict",
        str(model_path),
        str(sentences_csv),
        "-o",
        str(tmp_path / "out.csv"),
        "--jobs",
        "1",
    ]
    assert main([*args, "--target", TARGET, "--target-column", "target"]) == 2
    assert "so the column --target-column 'target' would not be read" in capsys.readouterr().err
    assert not list(tmp_path.glob("out.csv*"))


def test_rows_with_targets_a_per_target_model_never_saw_are_counted_in_a_note(tmp_path):
    config = Config.from_toml(
        REPO / "experiments" / "sample.toml",
        ["features.char=false", "model.strategy=shared_per_target"],
    )
    data = load_dataset(config.data, REPO / "data")
    train = split_dataset(data.rows, config.split, config.seed)["train"]
    model = StanceModel(
        fit_model(build_model(config), train), config.labels, config.to_dict(), needs_target(config)
    )
    path = model.save(tmp_path / "model.pkl")
    source = tmp_path / "in.csv"
    seen = train["target"].iloc[0]
    pd.DataFrame(
        {
            "text": ["A fair idea", "A bad idea", "No view", "Also fine"],
            "target": [seen, "rent caps", "rent caps", "bike lanes"],
        }
    ).to_csv(source, index=False)
    messages = []
    predict_file(
        str(path),
        str(source),
        str(tmp_path / "out.csv"),
        PredictOptions(jobs=1, chunk_size=2),
        log=messages.append,
    )
    assert len(messages) == 2 and messages[0].startswith("rows read 4, predicted 4")
    assert (
        messages[1].startswith("note: 3 rows name targets")
        and "'rent caps' (2), 'bike lanes' (1)" in messages[1]
    )
    messages.clear()
    summary = predict_file(
        str(path),
        str(source),
        str(tmp_path / "out2.csv"),
        PredictOptions(jobs=1, target=seen),
        log=messages.append,
    )
    assert summary.predicted == 4 and len(messages) == 1  # every row on a target it knows: no note


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text-column", "body"], "no column 'body'"),
        (["--target-column", "topic"], "no column 'topic'"),
        (["--text-column", "body", "--target-column", "topic"], "no column 'body' or 'topic'"),
        # A misspelt id column would otherwise number the rows by line without a word.
        (["--id-column", "doc_id"], "no column 'doc_id'"),
    ],
)
def test_missing_columns_exit_2_without_output(
    model_path, sentences_csv, tmp_path, capsys, args, message
):
    output = tmp_path / "out.csv"
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(sentences_csv),
                "-o",
                str(output),
                "--jobs",
                "1",
                *args,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err
    # The fix offered is for the column that is missing, not the other one.
    assert ("--text-column" in err) == ("body" in message) and ("--target-column" in err) == (
        "topic" in message
    )
    assert ("--id-column" in err) == ("doc_id" in message)
    assert list(tmp_path.iterdir()) == [sentences_csv]


def test_a_semicolon_separated_input_is_named_as_such(model_path, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("text;target\nA fair idea;carbon tax\n", encoding="utf-8")
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(source),
                "-o",
                str(tmp_path / "out.csv"),
                "--jobs",
                "1",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "found columns ['text;target']. The file looks separated by semicolons, but was read as CSV"
        in err
    )
    assert not (tmp_path / "out.csv").exists()


def test_a_named_id_column_is_looked_for_across_jsonl_lines(model_path, tmp_path, capsys):
    records = [
        {"text": "The strikes were reckless", "target": TARGET},
        {"doc": "b", "text": "A lawful reply", "target": TARGET},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    run(model_path, path, tmp_path / "out.csv", columns=ColumnNames(id="doc"))
    assert pd.read_csv(tmp_path / "out.csv", dtype=str)["id"].tolist() == ["1", "b"]
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(path),
                "-o",
                str(tmp_path / "x.csv"),
                "--jobs",
                "1",
                "--id-column",
                "doc_id",
            ]
        )
        == 2
    )
    assert "no line of the first 2 has the key 'doc_id'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_not_a_stance_model_and_unreadable_input_exit_2(
    model_path, sentences_csv, tmp_path, capsys
):
    import pickle

    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    assert (
        main(
            [
                "predict",
                str(tmp_path / "other.pkl"),
                str(sentences_csv),
                "-o",
                str(tmp_path / "a.csv"),
            ]
        )
        == 2
    )
    assert "pickle format of earlier versions" in capsys.readouterr().err
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(tmp_path / "absent.csv"),
                "-o",
                str(tmp_path / "b.csv"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "predict",
                str(tmp_path / "nothing"),
                str(sentences_csv),
                "-o",
                str(tmp_path / "c.csv"),
            ]
        )
        == 2
    )
    assert not list(tmp_path.glob("[abc].csv*"))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"jobs": 0}, "jobs must be at least 1"),
        ({"chunk_size": 0}, "chunk size must be at least 1"),
    ],
)
def test_worker_and_chunk_counts_below_one_are_refused_before_any_output(
    model_path, sentences_csv, tmp_path, settings, message
):
    with pytest.raises(StanceError, match=message):
        predict_file(
            str(model_path),
            str(sentences_csv),
            str(tmp_path / "out.csv"),
            PredictOptions(**settings),
            log=lambda m: None,
        )
    assert list(tmp_path.iterdir()) == [sentences_csv]


def interrupt_at(monkeypatch, index: int):
    """Make chunk ``index`` raise KeyboardInterrupt, as Ctrl-C would; returns the real chunk
    runner.
    """
    real = predict_module._run_chunk

    def interrupted(task):
        if task[0].index == index:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(predict_module, "_run_chunk", interrupted)
    return real


def test_interrupted_run_leaves_no_output_and_resume_equals_one_run(
    model_path, sentences_csv, tmp_path, monkeypatch
):
    run(model_path, sentences_csv, tmp_path / "once.csv", chunk_size=50)
    real = interrupt_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=50)
    assert not (tmp_path / "out.csv").exists()
    done = sorted(
        p.name for p in (tmp_path / "out.csv.parts").glob("*.json") if p.name != "state.json"
    )
    assert done == ["00000000.json", "00000001.json", "00000002.json", "00000003.json"]

    calls = []
    monkeypatch.setattr(
        predict_module, "_run_chunk", lambda task: calls.append(task[0].index) or real(task)
    )
    with pytest.raises(Exception, match="--resume"):
        run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=50)
    with pytest.raises(Exception, match="settings changed"):
        run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=60, resume=True)
    summary = run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=50, resume=True)
    assert calls == [4, 5, 6, 7, 8]  # finished chunks were not redone
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "once.csv").read_bytes()
    assert summary.rows_read == 418 and summary.predicted == 418


def test_resume_refuses_parts_cut_by_another_plan_or_computed_with_other_kernels(
    model_path, sentences_csv, tmp_path, monkeypatch
):
    # Before, a run interrupted under the plan that sized shares by lines resumed under the one
    # that sizes them by records: the kept parts held other rows, and rows went missing.
    monkeypatch.setattr(ranges, "PLAN", ranges.PLAN - 1)
    interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=50)
    monkeypatch.undo()
    with pytest.raises(Exception, match="plan changed"):
        run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=50, resume=True)

    interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(model_path, sentences_csv, tmp_path / "other.csv", chunk_size=50)
    monkeypatch.undo()
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Sandybridge")
    with pytest.raises(Exception, match="kernels changed"):
        run(model_path, sentences_csv, tmp_path / "other.csv", chunk_size=50, resume=True)


# A stdout run interrupted by Ctrl-C, whose clean-up a second Ctrl-C then cuts short: the
# chunk and the first removal of a folder each raise KeyboardInterrupt. With "again", a
# plain stdout run of the same file instead.
STDOUT_RUN = """
import shutil, sys, tempfile
from train import predict
tempfile.tempdir = sys.argv[3]
options = predict.PredictOptions(jobs=1, chunk_size=50)
if sys.argv[4] == "again":
    predict.predict_file(sys.argv[1], sys.argv[2], "-", options, log=lambda message: None)
    sys.exit()
real_chunk, real_rmtree = predict._run_chunk, shutil.rmtree
def chunk(task):
    if task[0].index == 2:
        raise KeyboardInterrupt
    return real_chunk(task)
cut = []
def rmtree(path, *args, **kwargs):
    if not cut:
        cut.append(str(path))
        raise KeyboardInterrupt
    return real_rmtree(path, *args, **kwargs)
predict._run_chunk, shutil.rmtree = chunk, rmtree
try:
    predict.predict_file(sys.argv[1], sys.argv[2], "-", options)
except KeyboardInterrupt:
    print("interrupted, left", cut, file=sys.stderr)
"""


def test_a_folder_a_second_ctrl_c_leaves_is_removed_by_the_next_run(
    model_path, sentences_csv, tmp_path
):
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    def stdout_run(mode: str) -> subprocess.CompletedProcess:
        args = [str(model_path), str(sentences_csv), str(scratch), mode]
        return subprocess.run(
            [sys.executable, "-c", STDOUT_RUN, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = stdout_run("interrupted")
    assert "interrupted, left" in first.stderr and "stance-predict-" in first.stderr, first.stderr
    (left,) = scratch.iterdir()  # its process has ended; nothing removed it
    again = stdout_run("again")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("\n") == 419  # a header and every row, on stdout
    assert not left.exists() and list(scratch.iterdir()) == []


def stance_command(*args) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from train.cli import main; sys.exit(main(sys.argv[1:]))",
        *args,
    ]


def test_resume_after_a_killed_process(model_path, tmp_path):
    frame = pd.read_csv(REPO / "data" / "sample" / "sentences.csv").rename(
        columns={"sentence": "text"}
    )
    big = pd.concat([frame] * 40, ignore_index=True).assign(id=lambda f: range(len(f)))
    source = tmp_path / "big.csv"
    big[["id", "text", "target"]].to_csv(source, index=False)
    args = [
        str(model_path),
        str(source),
        "-o",
        str(tmp_path / "out.csv"),
        "--chunk-size",
        "400",
        "--jobs",
        "1",
    ]
    process = subprocess.Popen(
        stance_command("predict", *args), cwd=REPO, stderr=subprocess.DEVNULL
    )
    parts = tmp_path / "out.csv.parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("0*.json"))) < 2:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "out.csv").exists()
    finished = len(list(parts.glob("0*.json")))
    assert 2 <= finished < len(big) // 400
    subprocess.run(
        stance_command("predict", *args, "--resume"),
        cwd=REPO,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    run(model_path, source, tmp_path / "once.csv", chunk_size=400)
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "once.csv").read_bytes()


def test_two_jobs_keep_the_input_order(model_path, sentences_csv, tmp_path):
    run(model_path, sentences_csv, tmp_path / "one.csv", chunk_size=30)
    predict_file(
        str(model_path),
        str(sentences_csv),
        str(tmp_path / "two.csv"),
        PredictOptions(jobs=2, chunk_size=30),
        log=lambda m: None,
    )
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def test_stdin_to_stdout(model_path, sentences_csv):
    result = subprocess.run(
        stance_command(
            "predict",
            str(model_path),
            "-",
            "-o",
            "-",
            "--format",
            "jsonl",
            "--chunk-size",
            "100",
            "--jobs",
            "1",
        ),
        input=sentences_csv.read_bytes(),
        capture_output=True,
        cwd=REPO,
        check=True,
    )
    out = pd.read_json(__import__("io").BytesIO(result.stdout), lines=True)
    assert len(out) == 418 and set(out["label"]) <= {"FAVOR", "AGAINST", "NONE"}
    assert b"rows read 418, predicted 418, rejected 0" in result.stderr


def test_an_output_or_rejects_file_that_names_the_input_is_refused(
    model_path, sentences_csv, tmp_path
):
    before = sentences_csv.read_bytes()
    (tmp_path / "link.csv").symlink_to(sentences_csv)
    cases = [
        (str(sentences_csv), {}, "The output .* is the input"),
        (
            str(tmp_path / "link.csv"),
            {},
            "The output .* is the input",
        ),  # the same file by another name
        (
            str(tmp_path / "out.csv"),
            {"rejects": str(sentences_csv)},
            "The rejects file .* is the input",
        ),
        (str(tmp_path / "out.csv"), {"rejects": str(tmp_path / "out.csv")}, "both .*out.csv"),
    ]
    for output, options, message in cases:
        with pytest.raises(StanceError, match=message):
            run(model_path, sentences_csv, output, **options)
    assert sentences_csv.read_bytes() == before
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    "model_as, destination",
    [
        ("folder", "-o {model}"),
        ("folder", "-o {model}/manifest.json"),
        ("folder", "-o {model}/arrays.safetensors"),
        ("folder", "-o {model}/sub/out.csv"),
        ("folder", "-o {tmp}/out.csv --rejects {model}/rejects.csv"),
        ("manifest", "-o {model}/manifest.json"),
        ("manifest", "-o {model}/out.csv"),
    ],
)
def test_an_output_or_rejects_file_that_is_the_model_or_inside_it_is_refused(
    model_path, sentences_csv, tmp_path, run_cli, model_as, destination
):
    # The finding: `stance predict m.pkl in.csv -o m.pkl` replaced the model with predictions.
    before = {p: p.read_bytes() for p in model_path.rglob("*") if p.is_file()}
    model = model_path if model_as == "folder" else model_path / "manifest.json"
    arguments = destination.format(model=model_path, tmp=tmp_path).split()
    code, out, err = run_cli("predict", model, sentences_csv, *arguments, "--format", "csv")
    assert code == 2 and err.count("\n") == 1, err
    assert "would damage the model" in err and "nothing was read or written" in err
    assert {p: p.read_bytes() for p in model_path.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "out.csv").exists()


def test_an_output_beside_a_model_file_is_written(model_path, sentences_csv, tmp_path, run_cli):
    # Only the model and its own folder are out of bounds, not the folder the model lies in.
    code, _, err = run_cli(
        "predict",
        model_path / "manifest.json",
        sentences_csv,
        "-o",
        model_path.parent / "beside.csv",
    )
    assert code == 0, err
    assert (model_path.parent / "beside.csv").exists()


def test_an_input_read_from_a_pipe_is_predicted_whole(model_path, sentences_csv, tmp_path, run_cli):
    # Found in review: reading a pipe's position failed ("Illegal seek"), and the check before
    # loading read the pipe's header, so the real read began on its second line.
    import os
    import threading

    fifo = tmp_path / "rows.pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(sentences_csv.read_bytes()))
    writer.start()
    code, _, err = run_cli(
        "predict", model_path, fifo, "--input-format", "csv", "-o", tmp_path / "out.csv"
    )
    writer.join()
    assert code == 0, err
    expected = pd.read_csv(sentences_csv)
    assert pd.read_csv(tmp_path / "out.csv")["id"].tolist() == expected["id"].tolist()


def test_an_unbalanced_quote_is_rejected_with_the_lines_it_spans(model_path, tmp_path):
    # A lenient CSV parser reads lines 3-5 as one text, and line 7 to the end of the file, silently.
    path = tmp_path / "in.csv"
    path.write_text(
        'id,text\n1,The strikes were reckless.\n2,"A quote opened, and\n3,left open until\n'
        '4,He said "no" to it.\n5,A fine point.\n6,"Opened at the end\n',
        encoding="utf-8",
    )
    summary = run(model_path, path, tmp_path / "out.csv", target=TARGET)
    out = pd.read_csv(tmp_path / "out.csv")
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert out["id"].tolist() == [1, 5]
    assert rejects["line"].tolist() == [3, 7]
    assert rejects["reason"].tolist() == [
        "malformed line: ',' expected after '\"' (lines 3-5 were read as one record; look for an "
        "unbalanced quote)",
        "malformed line: a quoted field opened here is never closed",
    ]
    assert (summary.rows_read, summary.predicted, summary.rejected) == (4, 2, 2)


def test_model_uris_of_all_three_kinds(model_path, sentences_csv, tmp_path, monkeypatch):
    from train import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    model = StanceModel.load(model_path)
    with tracking.start_run("predict-test", {}) as run_id:
        tracking.log_model(model, pd.DataFrame({"text": ["a reply"], "target": [TARGET]}))
    version = tracking.register_model(run_id, "stance-sample", alias="champion")
    folder = Path(
        mlflow.artifacts.download_artifacts(
            f"runs:/{run_id}/model", dst_path=str(tmp_path / "local")
        )
    )
    expected = None
    uris = (
        str(model_path),
        str(folder),
        f"runs:/{run_id}/model",
        f"runs:/{run_id[:8]}/model",
        "models:/stance-sample@champion",
        f"models:/stance-sample/{version}",
    )
    for uri in uris:
        run(uri, sentences_csv, tmp_path / "out.csv")
        out = (tmp_path / "out.csv").read_bytes()
        expected = expected or out
        assert out == expected, uri
    unknown = "0000" if not run_id.startswith("0000") else "ffff"
    with pytest.raises(StanceError, match=f"No run '{unknown}'"):
        run(f"runs:/{unknown}/model", sentences_csv, tmp_path / "out.csv")


DOCUMENT = (
    "WASHINGTON — Dr. Jane Roe told U.S. and U.K. officials on Monday that the strikes were “a "
    "grave mistake. "
    "Nobody should pretend otherwise.” She spoke for an hour.\n\n"
    "Critics, e.g. Sen. Doe, disagreed – resp. abstained. The vote is on Friday."
)


def test_documents_offsets_boundaries_and_one_row_per_document(model_path, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "one.txt").write_text(DOCUMENT, encoding="utf-8")
    (folder / "two.txt").write_text("The strikes were reckless. They must stop.", encoding="utf-8")
    (folder / "blank.txt").write_text("   \n", encoding="utf-8")
    summary = run(model_path, folder, tmp_path / "out.csv", documents=True, target=TARGET)
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    one = out[(out["id"] == "one") & (out["level"] == "sentence")]
    assert one["text"].tolist() == [
        "WASHINGTON — Dr. Jane Roe told U.S. and U.K. officials on Monday that the strikes were "
        "“a grave mistake. Nobody should pretend otherwise.”",
        "She spoke for an hour.",
        "Critics, e.g. Sen. Doe, disagreed – resp. abstained.",
        "The vote is on Friday.",
    ]
    for row in one.itertuples():
        assert DOCUMENT[row.start : row.end] == row.text
    documents = out[out["level"] == "document"]
    assert documents["id"].tolist() == ["one", "two"]
    shares = documents[["share_FAVOR", "share_AGAINST", "share_NONE"]].astype(float).sum(axis=1)
    assert shares.round(9).tolist() == [1.0, 1.0]
    assert (summary.rows_read, summary.predicted, summary.rejected, summary.sentences) == (
        3,
        2,
        1,
        6,
    )
    assert pd.read_csv(tmp_path / "out.rejects.csv")["reason"].tolist() == [
        "empty document: no sentences"
    ]


def test_documents_folder_bad_files_are_rejected_and_the_rest_predicted(model_path, tmp_path):
    folder = tmp_path / "docs"
    (folder / "2024").mkdir(parents=True)
    (folder / "a.txt").write_text("The strikes were reckless. They must stop.", encoding="utf-8")
    (folder / "a.md").write_text(
        "A second file with the same name. It has two sentences.", encoding="utf-8"
    )
    (folder / "b.txt").write_bytes(b"Caf\xe9 strikes were wrong.")  # latin-1, not UTF-8
    (folder / "2024" / "c.txt").write_text("Nested documents count too.", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG")  # not a document: not read
    summary = run(
        model_path, folder, tmp_path / "out.csv", documents=True, target=TARGET, chunk_size=100
    )
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    documents = out[out["level"] == "document"]
    # Sorted paths; ids that would collide keep their extension, and each gets its own document row.
    assert documents["id"].tolist() == ["2024/c", "a.md", "a.txt"]
    assert out[out["level"] == "sentence"].groupby("id").size().to_dict() == {
        "2024/c": 1,
        "a.md": 2,
        "a.txt": 2,
    }
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects[["line", "id"]].values.tolist() == [[4, "b"]]
    assert rejects["reason"][0].startswith("undecodable bytes: byte 3 is not valid UTF-8")
    assert (summary.rows_read, summary.predicted, summary.rejected) == (4, 3, 1)


@pytest.mark.parametrize(
    "make, message",
    [(lambda p: None, "does not exist"), (lambda p: p.mkdir(), "holds no .txt or .md files")],
)
def test_documents_path_without_documents_exits_2_and_leaves_nothing(
    model_path, tmp_path, capsys, make, message
):
    make(tmp_path / "docs")
    args = [
        "predict",
        str(model_path),
        str(tmp_path / "docs"),
        "--documents",
        "--target",
        TARGET,
        "-o",
        str(tmp_path / "out.csv"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(
        tmp_path.glob("out.csv*")
    )  # no output, and no parts folder that would demand --resume


@pytest.mark.parametrize(
    "option", [["--text-column", "body"], ["--id-column", "doc_id"], ["--input-format", "tsv"]]
)
def test_table_options_with_documents_are_refused_not_ignored(model_path, tmp_path, capsys, option):
    (tmp_path / "a.txt").write_text("The strikes were reckless. A lawful reply.")
    args = [
        "predict",
        str(model_path),
        str(tmp_path / "a.txt"),
        "--documents",
        "--target",
        TARGET,
        "-o",
        str(tmp_path / "out.csv"),
        *option,
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        f"{option[0]}: an option for a file of sentences, but --documents reads plain-text "
        "documents" in err
    )
    assert not list(tmp_path.glob("out.csv*"))
    # The Python call refuses them too: the check is predict_file's, not the command line's.
    with pytest.raises(StanceError, match="an option for a file of sentences"):
        run(
            model_path,
            tmp_path / "a.txt",
            tmp_path / "out.csv",
            documents=True,
            target=TARGET,
            columns=ColumnNames(id="doc_id"),
        )


def test_resume_refuses_documents_changed_since_the_interrupted_run(
    model_path, tmp_path, monkeypatch
):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.txt").write_text(
            f"Document {i} says the strikes were reckless. It says so twice.", encoding="utf-8"
        )
    real = interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run(model_path, folder, tmp_path / "out.csv", documents=True, target=TARGET, chunk_size=200)
    monkeypatch.setattr(predict_module, "_run_chunk", real)
    # Only a document's content changes: the folder itself looks the same.
    (folder / "3.txt").write_text("Now it says something else entirely.", encoding="utf-8")
    with pytest.raises(Exception, match="input_files changed"):
        run(
            model_path,
            folder,
            tmp_path / "out.csv",
            documents=True,
            target=TARGET,
            chunk_size=200,
            resume=True,
        )


def test_shared_documents_split_cleanly(model_path, tmp_path, shared_data):
    folder = shared_data.parent / "documents"
    run(model_path, folder, tmp_path / "out.csv", documents=True, target=TARGET)
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    texts = {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.txt")}
    sentences = out[out["level"] == "sentence"]
    for row in sentences.itertuples():
        assert texts[row.id][row.start : row.end] == row.text
    assert not sentences["text"].str.endswith(("U.S.", "U.K.", "Dr.")).any()
    assert (
        sentences["text"]
        .str.contains("‘All is well! Missiles launched from Iran", regex=False)
        .any()
    )
    assert sorted(out.loc[out["level"] == "document", "id"]) == sorted(texts)


def test_majority_aggregation(model_path, tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text(
        "The strikes were reckless and dangerous. They endangered civilians. Flights were rerouted."
    )
    run(model_path, path, tmp_path / "mean.csv", documents=True, target=TARGET)
    run(
        model_path,
        path,
        tmp_path / "majority.csv",
        documents=True,
        target=TARGET,
        aggregate="majority",
    )
    for name in ("mean", "majority"):
        document = pd.read_csv(tmp_path / f"{name}.csv").query("level == 'document'")
        assert len(document) == 1 and document["label"].iloc[0] in {"FAVOR", "AGAINST", "NONE"}


def test_a_missing_value_marker_is_rejected_not_predicted(model_path, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        f"id,text,target\n1,The strikes were lawful.,{TARGET}\n2,NaN,{TARGET}\n3,Who fired "
        "first?,NULL\n"
    )
    summary = run(model_path, path, tmp_path / "out.csv")
    assert (summary.rows_read, summary.predicted, summary.rejected) == (3, 1, 2)
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert list(rejects["reason"]) == [
        "missing text: the cell reads 'NaN', which is taken as a missing value",
        "missing target: the cell reads 'NULL', which is taken as a missing value",
    ]


# A takeover at the first share, and at a later one: the shares before it are read once.
@pytest.mark.parametrize("before", [0, 24])
def test_a_cut_misplaced_by_a_stray_quote_is_read_on_by_lines(
    model_path, tmp_path, monkeypatch, stray_quote_csv, before
):
    source = stray_quote_csv(before=before)
    # The share that holds the stray quote ends at a cut misplaced by it.
    stray = source.read_bytes().index(b"he said")
    at = next(share.index for share in ranges.plan(source, "csv", 1, 4) if share.end > stray)
    assert (at > 0) == (before > 0)
    run(model_path, source, tmp_path / "whole.csv", chunk_size=100_000)  # one share: no cut
    takeovers = []
    real = predict_module._take_over
    monkeypatch.setattr(
        predict_module, "_take_over", lambda *args: takeovers.append(args[2]) or real(*args)
    )
    summary = predict_file(
        str(model_path),
        str(source),
        str(tmp_path / "shared.csv"),
        PredictOptions(jobs=2, chunk_size=4),
        log=lambda m: None,
    )
    assert takeovers == [at]
    assert (tmp_path / "shared.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "shared.rejects.csv").read_bytes() == (
        tmp_path / "whole.rejects.csv"
    ).read_bytes()
    assert (summary.rows_read, summary.predicted, summary.rejected) == (42 + before, 41 + before, 1)
    assert not (tmp_path / "shared.csv.parts").exists()


def test_a_run_interrupted_after_reading_on_by_lines_resumes_the_same_way(
    model_path, tmp_path, monkeypatch, stray_quote_csv
):
    source = stray_quote_csv()
    run(model_path, source, tmp_path / "whole.csv", chunk_size=100_000)
    shares = len(ranges.plan(source, "csv", 1, 4))
    real = interrupt_at(monkeypatch, shares + 2)  # the third chunk read by lines
    with pytest.raises(KeyboardInterrupt):
        run(model_path, source, tmp_path / "out.csv", chunk_size=4)
    assert (tmp_path / "out.csv.parts" / predict_module.TAKEOVER).exists()
    calls = []
    monkeypatch.setattr(
        predict_module, "_run_chunk", lambda task: calls.append(task[0].index) or real(task)
    )
    run(model_path, source, tmp_path / "out.csv", chunk_size=4, resume=True)
    assert calls[0] == shares + 2  # the chunks read by lines before the interruption were kept
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_a_file_read_by_shares_streams_to_stdout_in_order(model_path, tmp_path, stray_quote_csv):
    source = stray_quote_csv(empty_row=False, before=24)  # read on by lines from the 7th share
    run(model_path, source, tmp_path / "whole.csv", chunk_size=100_000)
    result = subprocess.run(
        stance_command(
            "predict", str(model_path), str(source), "-o", "-", "--chunk-size", "4", "--jobs", "2"
        ),
        capture_output=True,
        cwd=REPO,
        check=True,
    )
    assert result.stdout == (tmp_path / "whole.csv").read_bytes()


def test_a_jsonl_chunk_whose_rows_are_all_rejected_adds_no_blank_line(model_path, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1}\n{"id": 2}\n{"text": "Fur farms should close.", "target": "fur"}\n'
    )
    run(model_path, source, tmp_path / "out.jsonl", chunk_size=1)
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1
    assert not (tmp_path / "out.jsonl").read_text().startswith("\n")


@pytest.mark.parametrize(
    "record",
    ["not json", '{"share": 0, "start": 5, "line": 1}', '{"share": -1}', "[1]", '{"share": "0"}'],
)
def test_a_damaged_takeover_record_stops_the_resumption_in_one_line(
    model_path, tmp_path, monkeypatch, stray_quote_csv, record
):
    # The record must not choose which bytes of the input are read: only the plan's own is taken.
    source = stray_quote_csv()
    shares = len(ranges.plan(source, "csv", 1, 4))
    interrupt_at(monkeypatch, shares + 2)
    with pytest.raises(KeyboardInterrupt):
        run(model_path, source, tmp_path / "out.csv", chunk_size=4)
    (tmp_path / "out.csv.parts" / predict_module.TAKEOVER).write_text(record)
    with pytest.raises(StanceError, match="does not match this input's plan"):
        run(model_path, source, tmp_path / "out.csv", chunk_size=4, resume=True)
    assert not (tmp_path / "out.csv").exists()


def test_a_damaged_state_file_refuses_the_resumption_in_one_line(
    model_path, sentences_csv, tmp_path, monkeypatch
):
    interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=50)
    (tmp_path / "out.csv.parts" / "state.json").write_text("{not json")
    with pytest.raises(StanceError, match="Cannot resume"):
        run(model_path, sentences_csv, tmp_path / "out.csv", chunk_size=50, resume=True)


def _encoder_model_and_twice_its_texts(tmp_path, encoder_setting: str, rows: int):
    """The sample model (without character n-grams) with the sentence encoder, fitted on the
    first ``rows`` sample rows, and an input holding each of their texts twice, in other chunks
    and among other texts: whichever chunk meets a text first encodes it for both rows."""
    config = Config.from_toml(
        REPO / "experiments" / "sample.toml", ["features.char=false", encoder_setting]
    )
    fitted = load_dataset(config.data, REPO / "data").rows.iloc[:rows]
    model = fit_stance_model(config, fitted, runtime_versions()).save(tmp_path / "model")
    source = tmp_path / "in.csv"
    pd.concat([fitted, fitted.iloc[::-1]])[["text", "target"]].to_csv(source, index=False)
    return model, source


def _never_called(message: str):
    def refuse(*args, **kwargs):
        raise AssertionError(message)

    return refuse


def _predicted(run_cli, model, source, out, *options) -> bytes:
    """The bytes ``stance predict MODEL SOURCE -o OUT OPTIONS`` writes; it must succeed."""
    code, _, err = run_cli("predict", model, source, "-o", out, *options)
    assert code == 0, err
    return out.read_bytes()


def test_an_encoder_on_numpy_predicts_one_chunk_at_a_time_with_its_products_on_jobs_threads(
    tmp_path, run_cli, monkeypatch, embeddings_extra
):
    # numpy's encoder sums a text's terms in groups set by its batch's padded width: chunks at
    # once would let thread timing decide a repeated text's vector.
    # The step's runtime left at its default, numpy.
    model, source = _encoder_model_and_twice_its_texts(
        tmp_path, "features.embeddings.weight=1.0", 30
    )

    refused = _never_called("chunks ran at once for an encoder on numpy")
    monkeypatch.setattr(predict_module, "ThreadPoolExecutor", refused)
    monkeypatch.setattr(workers, "pool", refused)
    one = _predicted(run_cli, model, source, tmp_path / "out-1.csv", "--jobs", "1")
    assert _predicted(run_cli, model, source, tmp_path / "out-2.csv", "--jobs", "2") == one


def test_a_model_with_a_sentence_encoder_takes_its_jobs_as_threads_of_one_process(
    tmp_path, run_cli, monkeypatch, embeddings_extra
):
    model, source = _encoder_model_and_twice_its_texts(
        tmp_path, 'features.embeddings.runtime="onnx-int8"', 60
    )

    threads_asked = []

    class CountedThreads(ThreadPoolExecutor):
        def __init__(self, max_workers, **kwargs):
            threads_asked.append(max_workers)
            super().__init__(max_workers, **kwargs)

    def predict(jobs: str, chunk_size: str = "20") -> bytes:
        memo.clear()  # so that each run encodes its texts instead of finding them encoded
        out = tmp_path / f"out-{jobs}-{chunk_size}.csv"
        return _predicted(run_cli, model, source, out, "--jobs", jobs, "--chunk-size", chunk_size)

    from threadpoolctl import threadpool_info

    from features import embeddings, onnx_encoder

    memo = {}
    monkeypatch.setattr(embeddings, "_MEMO", memo)
    monkeypatch.setattr(onnx_encoder, "_SESSIONS", {})
    monkeypatch.setattr(predict_module, "ThreadPoolExecutor", CountedThreads)
    monkeypatch.setattr(
        workers, "pool", _never_called("a worker pool was started for a sentence encoder")
    )
    limits_before = threadpool_info()
    one = predict("1")
    assert predict("2") == one
    assert predict("2", chunk_size="7") == one  # other chunks, other batches
    assert threads_asked == [1, 2, 2]  # chunks on one thread, then on two
    assert set(onnx_encoder._SESSIONS) == {("int8", 1)}  # each product on one core
    assert threadpool_info() == limits_before  # the limit ends with the run
