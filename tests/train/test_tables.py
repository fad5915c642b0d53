"""The streaming table readers (train/tables.py): every row is read or reported, with its line."""

import pandas as pd
import pytest

from train.errors import DataError
from train.tables import Table, format_of, read_all, separator_hint


def read_rows(path, fmt, batch_size=10_000):
    """Every row of a table, with its line and problem, across batches."""
    with Table(path, fmt, batch_size=batch_size) as table:
        out = []
        for batch in table.batches():
            out += [
                (line, row, batch.problems.get(i))
                for i, (line, row) in enumerate(zip(batch.lines, batch.rows))
            ]
        return table.columns, out


@pytest.mark.parametrize(
    "name, given, expected",
    [
        ("a.CSV", None, "csv"),
        ("a.tab", None, "tsv"),
        ("a.ndjson", None, "jsonl"),
        ("a.pq", None, "parquet"),
        ("a.txt", "tsv", "tsv"),
        ("-", None, "csv"),
    ],
)
def test_format_comes_from_the_option_or_the_extension(name, given, expected):
    assert format_of(name, given) == expected


@pytest.mark.parametrize(
    "header, fmt, expected",
    [
        ("text;target;label", "csv", "separated by semicolons, but was read as CSV"),
        ("text\ttarget", "csv", "separated by tabs, but was read as CSV"),
        ("text,target", "tsv", "separated by commas, but was read as TSV"),
        ("text|target", "csv", "separated by bars"),
        ("text", "csv", None),  # one column with no separator in it: nothing to hint at
        ("text;target", "jsonl", None),  # JSON keys may hold anything
    ],
)
def test_a_header_split_on_the_wrong_separator_is_pointed_out(tmp_path, header, fmt, expected):
    path = tmp_path / f"rows.{fmt}"
    path.write_text(header + "\n", encoding="utf-8") if fmt != "jsonl" else path.write_text(
        '{"text;target": "x"}\n', encoding="utf-8"
    )
    columns, _ = read_all(path, fmt)
    hint = separator_hint(columns, fmt)
    assert (expected in hint) if expected else hint == ""
    assert (
        separator_hint(["text", "target;x"], "csv") == ""
    )  # a header that did split is not second-guessed


def test_an_unknown_format_names_the_choices():
    with pytest.raises(DataError, match="name it .csv, .tsv, .jsonl or .parquet, or pass --format"):
        format_of("rows.xlsx")
    with pytest.raises(DataError, match="expected one of csv, tsv, jsonl, parquet"):
        format_of("rows.csv", "excel")


def test_csv_rows_keep_their_first_line_across_batches_and_blank_lines(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('text,target\n"two\nlines",t\n\nthree,t\nfour,t\n', encoding="utf-8")
    columns, rows = read_rows(path, "csv", batch_size=2)
    assert columns == ["text", "target"]
    assert [(line, row[0]) for line, row, _ in rows] == [
        (2, "two\nlines"),
        (5, "three"),
        (6, "four"),
    ]


def test_csv_problems_are_reported_in_place_and_reading_goes_on(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"text,target\nfine,t\ntoo,many,fields\nbad \xff byte,t\nlast,t\n")
    _, rows = read_rows(path, "csv")
    problems = {line: problem for line, _, problem in rows}
    assert problems[2] is None and problems[5] is None
    assert "expected 2 fields, found 3" in problems[3]
    assert "not valid UTF-8" in problems[4]
    assert rows[2][1][0] == "bad \\xff byte", "undecodable bytes are kept visible, not dropped"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_bad_byte_far_into_a_file_is_still_reported_after_clean_batches(tmp_path, fmt):
    # Clean files skip the search for escaped bytes until the decoder meets one; the row that
    # holds it, thousands of rows and several batches on, must still be flagged.
    path = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        lines = [b"text,target"] + [f"row {i},t".encode() for i in range(5000)]
        lines[4000] = b"bad \xff byte,t"
    else:
        lines = [f'{{"text": "row {i}", "target": "t"}}'.encode() for i in range(5000)]
        lines[4000] = b'{"text": "bad \xff byte", "target": "t"}'
    path.write_bytes(b"\n".join(lines) + b"\n")
    _, rows = read_rows(path, fmt, batch_size=700)
    flagged = [line for line, _, problem in rows if problem and "not valid UTF-8" in problem]
    assert flagged == [4001] and len(rows) == 5000


def test_an_unclosed_quote_names_the_lines_it_swallowed(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('text,target\nok,t\n"open,t\nnext,t\n', encoding="utf-8")
    _, rows = read_rows(path, "csv")
    line, _, problem = rows[-1]
    assert line == 3 and "never closed" in problem and "lines 3-4" in problem


def test_jsonl_problems_are_reported_with_the_line_as_read(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"text": "a", "target": "t"}\nnot json\n[1, 2]\n{"text": ["x"], "target": "t"}\n',
        encoding="utf-8",
    )
    with Table(path, "jsonl") as table:
        batch = next(table.batches())
    assert batch.lines == [1, 2, 3, 4]
    assert "malformed JSON" in batch.problems[1] and batch.raw[1] == "not json"
    assert "expected a JSON object, found list" in batch.problems[2]
    assert "'text' holds an array" in batch.problems[3]
    assert 0 not in batch.problems


def test_jsonl_look_ahead_finds_a_key_of_a_later_line_and_loses_no_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b", "id": "7"}\n{"text": "c"}\n', encoding="utf-8")
    with Table(path, "jsonl") as table:
        assert table.columns == ["text"]
        assert table.look_ahead_for(["id"]) == 2
        rows = [row for batch in table.batches(["text", "id"]) for row in batch.rows]
    assert rows == [["a", None], ["b", "7"], ["c", None]]


def test_read_all_takes_every_key_of_every_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a"}\n\n{"label": "FAVOR", "text": "b"}\n', encoding="utf-8")
    columns, batch = read_all(path, "jsonl")
    assert columns == ["text", "label"]
    assert batch.rows == [["a", None], ["b", "FAVOR"]] and batch.lines == [1, 3]


def test_parquet_rows_are_numbered_from_one_across_batches(tmp_path):
    path = tmp_path / "rows.parquet"
    pd.DataFrame(
        {"text": ["a", "b", "c"], "target": ["t", None, "u"], "id": [10, 11, 12]}
    ).to_parquet(path)
    columns, rows = read_rows(path, "parquet", batch_size=2)
    assert columns == ["text", "target", "id"]
    assert [(line, row) for line, row, _ in rows] == [
        (1, ["a", "t", "10"]),
        (2, ["b", None, "11"]),
        (3, ["c", "u", "12"]),
    ]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "is empty; expected a header line"),
        ("empty.jsonl", b"\n\n", "is empty; expected one JSON object per line"),
        ("junk.jsonl", b"junk\n", "no line holds a JSON object"),
        ("bad.parquet", b"not parquet", "could not be read as Parquet"),
    ],
)
def test_unreadable_tables_are_refused_with_the_reason(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        Table(path, format_of(path))


def test_a_missing_file_says_where_data_is_looked_for(tmp_path):
    with pytest.raises(DataError, match="STANCE_DATA_DIR"):
        Table(tmp_path / "absent.csv", "csv")
    with pytest.raises(DataError, match="is a folder; expected a file"):
        Table(tmp_path, "csv")
