"""Property-based fuzzing of what reads a user's files: the table readers, training data, prediction
input, the config.

Every outcome must be a result whose counts add up, or a StanceError of one line;
never another exception. The budget is fixed (200 examples per target; set
STANCE_FUZZ_EXAMPLES for a longer hunt) and the examples are derived from the test's
name (derandomize), so CI runs the same cases each time.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from train.errors import StanceError

EXAMPLES = int(__import__("os").environ.get("STANCE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LABELS = ["FAVOR", "AGAINST", "NONE"]

# A cell: words, the labels, empty, missing-value markers, quotes, separators, line breaks, odd
# Unicode.
cells = st.one_of(
    st.text(alphabet=string.ascii_letters + " ,;\t\"'\n\r\\#@", max_size=30),
    st.sampled_from(LABELS + ["", "NaN", "null", " ", "carbon tax", "a1", "1.5", "-2"]),
    st.text(max_size=20),  # any Unicode, surrogates and controls included
)
separators = st.sampled_from([",", "\t", ";", "|"])
quotes = st.sampled_from(['"', "'", ""])


@st.composite
def delimited_files(draw) -> bytes:
    """A header (usually the expected one) and rows of random cells, randomly quoted and
    separated.
    """
    separator, quote = draw(separators), draw(quotes)
    header = draw(
        st.one_of(
            st.just(["id", "text", "target", "label"]), st.lists(cells, min_size=1, max_size=5)
        )
    )
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=6), max_size=8))
    lines = [separator.join(f"{quote}{cell}{quote}" for cell in row) for row in [header, *rows]]
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    return text.encode(encoding, errors="surrogateescape" if encoding == "utf-8" else "replace")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def json_line_files(draw) -> bytes:
    import json

    lines = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            record = {
                key: draw(st.one_of(cells, json_values))
                for key in draw(
                    st.lists(
                        st.sampled_from(["id", "text", "target", "label", "x"]),
                        max_size=5,
                        unique=True,
                    )
                )
            }
            lines.append(json.dumps(record, ensure_ascii=draw(st.booleans())))
        else:
            lines.append(draw(st.text(max_size=40)))
    return "\n".join(lines).encode("utf-8", errors="surrogateescape")


any_file = st.one_of(st.binary(max_size=400), delimited_files())


def _one_line(error: StanceError) -> None:
    assert "\n" not in str(error).strip(), str(error)


def _write(folder: str, name: str, content: bytes) -> Path:
    path = Path(folder) / name
    path.write_bytes(content)
    return path


@FUZZ
@given(content=any_file, fmt=st.sampled_from(["csv", "tsv"]))
def test_the_table_reader_reports_or_reads_every_line(content, fmt):
    from train.tables import read_all

    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, f"in.{fmt}", content)
        try:
            columns, batch = read_all(path, fmt)
        except StanceError as error:
            _one_line(error)
            return
    assert len(batch.rows) == len(batch.lines)
    assert all(len(row) == len(columns) for row in batch.rows)
    assert set(batch.problems) <= set(range(len(batch.rows)))


@FUZZ
@given(content=st.one_of(json_line_files(), st.binary(max_size=300)))
def test_the_json_lines_reader_reports_or_reads_every_line(content):
    from train.tables import read_all

    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, "in.jsonl", content)
        try:
            columns, batch = read_all(path, "jsonl")
        except StanceError as error:
            _one_line(error)
            return
    assert len(batch.rows) == len(batch.lines) and all(
        len(row) == len(columns) for row in batch.rows
    )


@FUZZ
@given(content=any_file)
def test_training_data_is_kept_or_rejected_row_for_row(content):
    from train.config import Config
    from train.data import load_dataset

    config = Config.from_layers(
        {"data": {"format": "csv", "path": "in.csv", "labels": LABELS, "on_bad_rows": "quarantine"}}
    ).data
    with tempfile.TemporaryDirectory() as folder:
        _write(folder, "in.csv", content)
        try:
            data = load_dataset(config, Path(folder))
        except StanceError as error:
            _one_line(error)
            return
    assert len(data.rows) + len(data.rejects) == data.rows_read
    assert data.rejects["reason"].notna().all()


@FUZZ
@given(
    content=st.one_of(any_file, json_line_files()),
    fmt=st.sampled_from(["csv", "tsv", "jsonl"]),
    needs_target=st.booleans(),
)
def test_prediction_input_is_predicted_or_rejected_row_for_row(content, fmt, needs_target):
    from train.predict import PredictOptions, Share, sentence_chunks

    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, f"in.{fmt}", content)
        try:
            _, chunks = sentence_chunks(str(path), PredictOptions(chunk_size=3), needs_target)
            chunks = list(chunks)
        except StanceError as error:
            _one_line(error)
            return
        for chunk in chunks:
            assert len(chunk.frame) + len(chunk.rejects) == chunk.rows_read
            assert chunk.rejects["reason"].notna().all()
        # Read by shares, as workers read a file: the same rows and rejects, or a share that
        # says its cut was misplaced (the caller then reads on by lines).
        _, shares = sentence_chunks(
            str(path), PredictOptions(chunk_size=3), needs_target, by_shares=True
        )
        by_shares = [s.read() if isinstance(s, Share) else s for s in shares]
    if any(chunk.misplaced_cut for chunk in by_shares):
        return
    for name in ("frame", "rejects"):
        expected = pd.concat([getattr(c, name) for c in chunks], ignore_index=True)
        got = pd.concat([getattr(c, name) for c in by_shares], ignore_index=True)
        pd.testing.assert_frame_equal(got.astype(object), expected.astype(object))


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-10, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 5), max_size=3),
)
known_keys = {
    "": ["name", "seed", "headline_metric", "description", "x"],
    "data": [
        "format",
        "path",
        "labels",
        "on_bad_rows",
        "target",
        "use_weights",
        "columns",
        "label_map",
    ],
    "split": ["method", "test_size", "valid_size"],
    "model": [
        "classifier",
        "strategy",
        "min_target_rows",
        "shared_weight",
        "label_weights",
        "refit_on_valid",
        "clf",
    ],
    "features": ["word", "char", "style", "sentiment", "nope"],
    "search": ["metric", "space"],
}


@st.composite
def experiments(draw) -> dict:
    """A TOML document over the config's own keys (and some it does not know), with random
    values.
    """
    document = {}
    for section, keys in known_keys.items():
        chosen = draw(st.lists(st.sampled_from(keys), max_size=3, unique=True))
        values = {
            key: draw(
                st.one_of(
                    toml_scalars,
                    st.dictionaries(
                        st.sampled_from(["ngram_range", "C", "min_df", "low", "x"]),
                        toml_scalars,
                        max_size=2,
                    ),
                )
            )
            for key in chosen
        }
        if section:
            if values or draw(st.booleans()):
                document[section] = values
        else:
            document.update(values)
    return document


overrides = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.builds(
            lambda k, v: f"{k}={v}",
            st.sampled_from(
                [
                    "clf__C",
                    "word__ngram_range",
                    "seed",
                    "data.path",
                    "features.char",
                    "model.nope",
                    "x__y",
                ]
            ),
            st.text(max_size=8),
        ),
    ),
    max_size=3,
)


@FUZZ
@given(
    document=st.one_of(experiments().map(tomli_w.dumps), st.text(max_size=200)), overrides=overrides
)
def test_the_config_loader_accepts_or_explains(document, overrides):
    from train.config import Config

    with tempfile.TemporaryDirectory() as folder:
        path = _write(folder, "experiment.toml", document.encode("utf-8", errors="surrogateescape"))
        try:
            config = Config.from_toml(path, overrides)
        except StanceError as error:
            _one_line(error)
            return
    assert Config.from_toml(_write_back(config), []) == config


def _write_back(config) -> Path:
    folder = tempfile.mkdtemp()
    return _write(folder, "experiment.toml", config.to_toml().encode("utf-8"))


@pytest.mark.parametrize(
    "argv", [["train", "nope.toml"], ["predict", "nope.pkl", "in.csv", "-o", "out.csv"]]
)
def test_the_cli_turns_a_missing_file_into_one_line(run_cli, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
