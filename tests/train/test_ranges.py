"""Byte-range shares of a file read as the whole file is read: the same rows, problems and line
numbers, for any bytes a user's file may hold."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from train import ranges
from train.tables import Table


def whole(path, fmt, columns=None):
    """Every row of the file by the sequential reader: (line, values, problem)."""
    with Table(path, fmt, batch_size=3) as table:
        wanted = columns or table.columns
        return table.columns, [
            (line, row, batch.problems.get(i))
            for batch in table.batches(wanted)
            for i, (line, row) in enumerate(zip(batch.lines, batch.rows))
        ]


def by_shares(path, fmt, columns, header_lines, rows_per_share):
    """The same, read share by share; and whether a non-final share ended inside a record."""
    pieces = ranges.plan(path, fmt, header_lines, rows_per_share)
    assert pieces is not None
    assert pieces[0].start >= 0 and pieces[-1].last
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
    out, misplaced = [], False
    for piece in pieces:
        table = Table.share(path, fmt, columns, piece)
        for batch in table.batches(columns):
            out += [
                (line, row, batch.problems.get(i))
                for i, (line, row) in enumerate(zip(batch.lines, batch.rows))
            ]
        misplaced |= table.ended_inside_record and not piece.last
    return out, misplaced


# Cells built from the pieces that make CSV hard: quotes (paired and stray), separators, every
# line end, blank lines, bytes that are not UTF-8 and a non-ASCII character.
PIECES = ["a", "bc", " ", ",", "\t", '"', '""', "\n", "\r\n", "\r", "é", "\udcff"]
cells = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)


def quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


@st.composite
def delimited_files(draw):
    """CSV text: mostly well formed (quoted where needed, as writers do), sometimes raw cells
    written as they are, which may leave quotes open or stray."""
    raw = draw(st.booleans())
    rows = draw(st.lists(st.tuples(cells, cells), max_size=25))
    lines = ["text,target"]
    for text, target in rows:
        values = [v if raw or v.isalnum() else quoted(v) for v in (text, target)]
        lines.append(",".join(values))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + draw(st.sampled_from(["", end])), raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file=delimited_files(), rows=st.integers(1, 4), bom=st.booleans())
def test_shares_read_as_the_whole_csv_file(tmp_path_factory, file, rows, bom):
    text, raw = file
    path = tmp_path_factory.mktemp("ranges") / "rows.csv"
    data = text.encode("utf-8", "surrogateescape")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    with Table(path, "csv") as table:
        header_lines = table._reader.line_num
    columns, expected = whole(path, "csv")
    if ranges.plan(path, "csv", header_lines, rows) is None:
        return
    got, misplaced = by_shares(path, "csv", columns, header_lines, rows)
    # Quoted as writers quote, a file is never cut in the wrong place; written raw, it may be,
    # and then the share says so and the caller reads the file whole.
    assert raw or not misplaced
    if not misplaced:
        assert got == expected


def json_record(cell: str) -> str:
    # A raw \r would end the line as a reader counts lines: JSON writers escape it.
    return '{"text": ' + quoted(cell).replace("\r", "\\r") + ', "id": 1}'


@st.composite
def json_files(draw):
    lines = draw(
        st.lists(
            st.one_of(
                cells.map(json_record),
                st.sampled_from(["", "[1]", "{broken", '{"text": ["a"]}', "\xff\xfe"]),
            ),
            max_size=25,
        )
    )
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=json_files(), rows=st.integers(1, 4))
def test_shares_read_as_the_whole_json_lines_file(tmp_path_factory, text, rows):
    path = tmp_path_factory.mktemp("ranges") / "rows.jsonl"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        columns, expected = whole(path, "jsonl", ["text", "id"])
    except Exception as error:  # no line is a JSON object: the whole-file reader refuses it
        assert "JSON" in str(error) or "empty" in str(error)
        return
    got, misplaced = by_shares(path, "jsonl", ["text", "id"], 0, rows)
    assert not misplaced
    assert got == expected


def test_a_cut_is_never_made_inside_a_quoted_field(tmp_path):
    path = tmp_path / "rows.csv"
    body = "".join(f'"line one of {i}\nline two, {i}",t\n' for i in range(50))
    path.write_text("text,target\n" + body)
    pieces = ranges.plan(path, "csv", 1, 3)
    assert len(pieces) > 5
    got, misplaced = by_shares(path, "csv", ["text", "target"], 1, 3)
    assert not misplaced
    assert [line for line, _, _ in got] == list(range(2, 102, 2))
    assert list(got[7][1]) == ["line one of 7\nline two, 7", "t"]


def test_a_stray_quote_that_misleads_the_plan_is_found_by_the_reader(tmp_path):
    # The stray quote in row 1 makes the count of quotation marks odd from there on, so the
    # plan cuts inside the quoted fields that follow; the share that holds such a cut must say so.
    path = tmp_path / "rows.csv"
    body = 'he said "no,t\n' + "".join(f'"two\nlines {i}",t\n' for i in range(30))
    path.write_text("text,target\n" + body)
    _, misplaced = by_shares(path, "csv", ["text", "target"], 1, 2)
    assert misplaced


def test_a_header_too_long_to_plan_is_left_to_the_whole_file_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(ranges, "_SAMPLE", 8)
    path = tmp_path / "rows.csv"
    path.write_text("a_long_column_name,target\nx,y\n")
    assert ranges.plan(path, "csv", 1, 1) is None


def test_an_empty_body_is_one_empty_share(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,target\n")
    [piece] = ranges.plan(path, "csv", 1, 10)
    assert (piece.start, piece.end, piece.first_line, piece.last) == (12, 12, 2, True)


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_shares_cover_the_body_in_about_the_rows_asked(tmp_path, end):
    path = tmp_path / "rows.csv"
    path.write_text(end.join(["text,target"] + [f"row {i},t" for i in range(1000)]) + end)
    pieces = ranges.plan(path, "csv", 1, 100)
    assert 8 <= len(pieces) <= 12
    got, _ = by_shares(path, "csv", ["text", "target"], 1, 100)
    assert [line for line, _, _ in got] == list(range(2, 1002))


def test_shares_hold_about_the_rows_asked_when_texts_span_many_lines(tmp_path):
    # Each record spans 12 lines, as an FNC-1 article does; counted as lines, the plan cut
    # shares of 8 or 9 records where 100 were asked.
    path = tmp_path / "rows.csv"
    paragraphs = "\n".join(f'paragraph {k}, said ""someone""' for k in range(12))
    body = "".join(f'"{paragraphs} {i}",t\n' for i in range(1000))
    path.write_text("text,target\n" + body)
    assert 8 <= len(ranges.plan(path, "csv", 1, 100)) <= 12
    got, misplaced = by_shares(path, "csv", ["text", "target"], 1, 100)
    assert not misplaced and len(got) == 1000


def test_a_file_cut_short_after_the_plan_is_refused_not_read_in_part(tmp_path):
    from train.errors import DataError

    path = tmp_path / "rows.csv"
    path.write_text("text,target\n" + "".join(f"row {i},t\n" for i in range(100)))
    pieces = list(ranges.plan(path, "csv", 1, 10))
    path.write_text("text,target\nrow 0,t\n")  # truncated while the run goes on
    with pytest.raises(DataError, match="shorter than when the run began"):
        Table.share(path, "csv", ["text", "target"], pieces[3])
