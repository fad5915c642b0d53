"""Streaming readers for CSV, TSV, JSON Lines and Parquet that keep line numbers.

A reader yields :class:`Batch` objects: rows as lists of string values,
their line numbers, and the problems (malformed line, undecodable bytes)
of rows that could not be read. A bad row never raises; it is reported so
the caller can stop with its line number or set it aside.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import operator
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from train.errors import ConfigError, DataError
from train.ranges import ByteRange

if TYPE_CHECKING:  # the writers take frames; reading needs no pandas
    import pandas as pd

# Lines of a JSON stream searched for a key the first record lacks (held in memory).
JSON_LOOK_AHEAD = 10_000
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
UNDECODABLE = "undecodable bytes: the line is not valid UTF-8"


@dataclass(frozen=True)
class ColumnNames:
    """Which column of a user's table holds each record field.

    The one place where a user's column names meet the fields the library reads (``text``,
    ``target``, ``label``, ``id``). A field left as None is read from the column of its own
    name. ``stance predict`` and ``stance evaluate`` fill this from ``--text-column`` and its
    kin; an experiment file fills it from ``[data.columns]``.

    Examples
    --------
    >>> names = ColumnNames(text="sentence")
    >>> names.column("text"), names.column("target"), names.given()
    ('sentence', 'target', {'text': 'sentence'})
    """

    text: str | None = None
    target: str | None = None
    label: str | None = None
    id: str | None = None

    @classmethod
    def from_mapping(cls, mapping) -> ColumnNames:
        return cls(**{field_name: mapping.get(field_name) for field_name in COLUMN_OPTIONS})

    def column(self, field_name: str) -> str:
        """The column that holds ``field_name``: the name given, else the field's own."""
        return getattr(self, field_name) or field_name

    def given(self) -> dict[str, str]:
        """The fields whose column was named, with that name."""
        return {name: getattr(self, name) for name in COLUMN_OPTIONS if getattr(self, name)}

    def options_given(self) -> list[str]:
        """The command-line options that named a column, as a user typed them."""
        return [COLUMN_OPTIONS[name] for name in self.given()]

    def check_one_target(self, target: str | None) -> None:
        """Refuse ``--target`` (one target for every row) together with ``--target-column``."""
        if target is not None and self.target is not None:
            raise ConfigError(
                f"--target gives every row the target {target!r}, so the column "
                f"--target-column {self.target!r} would not be read. Pass --target-column to "
                "read each row's target, or --target for one target, not both."
            )


# The command-line option that names each field's column.
COLUMN_OPTIONS = {
    "text": "--text-column",
    "target": "--target-column",
    "label": "--label-column",
    "id": "--id-column",
}


def is_skipped_name(name: str) -> bool:
    """Files and folders whose name starts with ``.`` or ``_`` are not read from a folder, by any
    command or route: hidden files, and the markers Spark and Hadoop write (``_SUCCESS``), which
    Spark's own listing leaves out."""
    return name.startswith((".", "_"))


def format_of(path: str | Path, given: str | None = None) -> str:
    """The table format: ``given`` if set, else from the file extension."""
    if given:
        if given not in set(FORMATS.values()):
            raise DataError(f"Unknown format {given!r}; expected one of csv, tsv, jsonl, parquet.")
        return given
    if str(path) == "-":
        return "csv"
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"Cannot tell the format of {path} from its extension {suffix!r}; name it .csv, .tsv, "
            ".jsonl or .parquet, or pass --format."
        )
    return FORMATS[suffix]


# Any surrogate: those surrogateescape makes of bytes that are not UTF-8, and a lone one that a
# JSON line spells as an escape ("\\ud83d", half of an emoji cut off), which no UTF-8 writer takes.
_SURROGATE = re.compile("[\ud800-\udfff]")

# Text files are decoded with surrogateescape through this counting wrapper, so that a file with
# no byte outside UTF-8 (nearly all) skips the per-value search for escaped bytes.
_ESCAPED = [0]
_surrogateescape = codecs.lookup_error("surrogateescape")


def _count_and_escape(error: UnicodeError):
    _ESCAPED[0] += 1
    return _surrogateescape(error)


codecs.register_error("stance-surrogateescape", _count_and_escape)


def separator_hint(columns: list[str], fmt: str) -> str:
    """A sentence for a missing-column error when the header was split on the wrong separator.

    A semicolon-separated file (the CSV of many European spreadsheets) read as CSV gives
    one column named 'text;target;label'; saying so spares a puzzled look at the list.
    """
    expected = {"csv": ",", "tsv": "\t"}.get(fmt)
    if expected is None or len(columns) != 1:
        return ""
    names = {";": "semicolons", "\t": "tabs", "|": "bars", ",": "commas"}
    found = [name for sign, name in names.items() if sign != expected and sign in columns[0]]
    if not found:
        return ""
    return (
        f" The file looks separated by {found[0]}, but was read as {fmt.upper()}, which is "
        f"separated by {names[expected]}: "
        f"save it with commas (.csv) or tabs (.tsv), with the format to match."
    )


# Cells that spreadsheets and pandas write for a missing value. A text or target that
# reads exactly one of these (case and surrounding spaces aside) is taken as missing, not
# as the word: "NaN" is not a sentence anyone annotated. Labels are left alone, where
# "None" can be a user's label.
MISSING_MARKERS = frozenset({"nan", "na", "n/a", "#n/a", "null", "none", "<na>"})
LONGEST_MARKER = max(map(len, MISSING_MARKERS))


def missing_marker(value) -> str | None:
    """The value, where it is a missing-value marker such as 'NaN' or 'NULL'; else None."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    # The length test spares casefolding a copy of every long text.
    if len(stripped) <= LONGEST_MARKER and stripped.casefold() in MISSING_MARKERS:
        return stripped
    return None


def has_surrogates(value: str) -> bool:
    """Whether the text holds a surrogate: bytes that are not UTF-8 (escaped on decoding), or a
    lone surrogate from a JSON escape."""
    # isascii() reads a flag CPython keeps on every string: most texts need no scan.
    return not value.isascii() and _SURROGATE.search(value) is not None


def _escaped(error: UnicodeError):
    """surrogateescape's bytes back for the escapes it made; any other surrogate as \\udNNN."""
    if isinstance(error, UnicodeEncodeError):
        bad = error.object[error.start : error.end]
        if all("\udc80" <= ch <= "\udcff" for ch in bad):
            return _surrogateescape(error)
        return "".join(f"\\u{ord(ch):04x}" for ch in bad), error.end
    raise error


codecs.register_error("stance-visible", _escaped)


def visible(value: str) -> str:
    """Show undecodable bytes as \\xNN (and a lone surrogate as \\udNNN) so a rejects file can
    hold them."""
    return value.encode("utf-8", "stance-visible").decode("utf-8", "backslashreplace")


@dataclass
class Batch:
    """Up to ``batch_size`` rows: values per column, line numbers, and read problems by position."""

    columns: list[str]
    rows: list[list[str | None]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    problems: dict[int, str] = field(default_factory=dict)
    # The line as read, for rows whose fields could not be parsed out of it
    # (malformed JSON): the only copy when the input was stdin.
    raw: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str | None]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


class Table:
    """An open table: its column names (read eagerly, so a missing column fails
    before any output is written) and an iterator of batches."""

    def __init__(self, source: str | Path, fmt: str, batch_size: int = 10_000):
        self.source, self.format, self.batch_size = str(source), fmt, batch_size
        self._handle = None
        self._escaped_before = _ESCAPED[0]
        self._line_offset, self._share_end = 0, None
        self.ended_inside_record = False
        if fmt in ("csv", "tsv", "jsonl"):
            if self.source == "-":
                self._handle = io.TextIOWrapper(
                    sys.stdin.buffer,
                    encoding="utf-8-sig",
                    errors="stance-surrogateescape",
                    newline="",
                )
            else:
                self._handle = open(
                    require_path(self.source),
                    encoding="utf-8-sig",
                    errors="stance-surrogateescape",
                    newline="",
                )
        if fmt in ("csv", "tsv"):
            # strict: a quote left open would otherwise swallow every line after it into one
            # field without a word; strict parsing makes it a malformed line we can report.
            self._reader = csv.reader(
                self._handle, delimiter="," if fmt == "csv" else "\t", strict=True
            )
            try:
                header = next(self._reader)
            except StopIteration:
                self.close()
                raise DataError(
                    f"{self.source} is empty; expected a header line naming the columns."
                ) from None
            except csv.Error as error:
                self.close()
                raise DataError(
                    f"{self.source}, line 1: cannot read the header: {error}."
                ) from None
            self.columns = [visible(c) for c in header]
        elif fmt == "jsonl":
            # JSONL has no header: the first record that parses names the columns.
            # Unparseable lines before it are held back and rejected in their turn.
            self._pending = self._json_records()
            self._head = []
            for item in self._pending:
                self._head.append(item)
                if item[2] is None:
                    break
            parsed = [record for _, record, problem, _ in self._head if problem is None]
            if not self._head:
                self.close()
                raise DataError(f"{self.source} is empty; expected one JSON object per line.")
            if not parsed:
                self.close()
                number, _, problem, _ = self._head[0]
                raise DataError(
                    f"{self.source}: no line holds a JSON object (line {number}: {problem}); "
                    "expected one JSON object per line."
                )
            self.columns = list(parsed[0].keys())
        else:
            # pyarrow (0.14 s) for Parquet only: the preflight reads CSV and JSON headers with
            # this module and reports a mistake in 0.1 s.
            import pyarrow.parquet as pq

            try:
                self._parquet = pq.ParquetFile(require_path(self.source))
            except DataError:
                raise
            except Exception as error:  # pyarrow raises several types for a damaged file
                raise DataError(f"{self.source} could not be read as Parquet: {error}.") from None
            self.columns = list(self._parquet.schema_arrow.names)
            self._rows_read = 0

    @classmethod
    def share(
        cls,
        source: str | Path,
        fmt: str,
        columns: list[str],
        piece: ByteRange,
        batch_size: int = sys.maxsize,
    ) -> Table:
        """One share of a CSV, TSV or JSON Lines file (planned by :func:`train.ranges.plan`),
        read as a whole-file read reads it: the same rows, problems and line numbers (in one
        batch by default). ``columns`` are the whole file's, from its header or first records.

        After reading, :attr:`ended_inside_record` says whether the share ended inside a quoted
        field: a cut in the wrong place, unless the share is the file's last."""
        table = cls.__new__(cls)
        table.source, table.format, table.batch_size = str(source), fmt, batch_size
        table._escaped_before = _ESCAPED[0]
        with open(require_path(source), "rb") as handle:
            handle.seek(piece.start)
            data = handle.read(piece.end - piece.start)
        if len(data) != piece.end - piece.start:
            raise DataError(
                f"{source} is shorter than when the run began (bytes {piece.start:,}-{piece.end:,} "
                f"were planned, {len(data):,} could be read): it changed while it was read. Run "
                "the command again once the file is complete."
            )
        # Shares start after a line break, so no character is cut in two; only a share at the
        # file's start can hold the byte-order mark that a whole-file read drops.
        text = data.decode("utf-8-sig" if piece.start == 0 else "utf-8", "stance-surrogateescape")
        table._handle = io.StringIO(text, newline="")
        table._line_offset, table._share_end = piece.first_line - 1, piece.end
        table.ended_inside_record = False
        table.columns = list(columns)
        if fmt in ("csv", "tsv"):
            table._reader = csv.reader(
                table._handle, delimiter="," if fmt == "csv" else "\t", strict=True
            )
        else:
            table._head, table._pending = [], table._json_records()
        return table

    def header_lines(self) -> int:
        """The lines the header took (CSV and TSV; JSON Lines has none)."""
        return self._reader.line_num if self.format in ("csv", "tsv") else 0

    def extent(self) -> tuple[int | None, str]:
        """How much there is to read, for a progress bar: a file's size in bytes, a Parquet
        file's rows, or nothing known (stdin)."""
        if self.format == "parquet":
            return self._parquet.metadata.num_rows, "rows"
        status = None if self.source == "-" else os.fstat(self._handle.fileno())
        if status is None or not stat.S_ISREG(status.st_mode):  # stdin, a pipe: size unknown
            return None, "rows"
        return status.st_size, "bytes"

    def position(self) -> int:
        """How much of :meth:`extent` has been read: bytes (to within the reader's buffer) or
        Parquet rows."""
        if self.format == "parquet":
            return self._rows_read
        if self._share_end is not None:
            return self._share_end
        try:
            return self._handle.buffer.tell()
        except OSError:  # a pipe has no position
            return 0

    def close(self):
        if self._handle is not None and self.source != "-":
            self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _may_have_escapes(self) -> bool:
        """False while no byte outside UTF-8 has been decoded since this table opened (by any
        table: a decoder reads ahead of the rows handed out, so the count is never late)."""
        return _ESCAPED[0] != self._escaped_before

    def batches(self, columns: list[str] | None = None) -> Iterator[Batch]:
        """Batches holding ``columns`` (default: all), in file order."""
        wanted = columns or self.columns
        repeated = [c for c in dict.fromkeys(wanted) if self.columns.count(c) > 1]
        if repeated:
            places = [str(i + 1) for i, c in enumerate(self.columns) if c == repeated[0]]
            raise DataError(
                f"{self.source}, line 1: the header names the column {repeated[0]!r} "
                f"{len(places)} times (columns {', '.join(places)}), so which one to read is "
                "unclear; rename the others."
            )
        if self.format in ("csv", "tsv"):
            return self._delimited_batches(wanted)
        if self.format == "jsonl":
            return self._json_batches(wanted)
        return self._parquet_batches(wanted)

    def _delimited_batches(self, wanted):
        positions = [self.columns.index(c) for c in wanted]
        width = len(self.columns)
        reader, next_record = self._reader, self._reader.__next__
        # Bound once: this loop runs once per row of inputs of millions of rows.
        pick = operator.itemgetter(*positions) if len(positions) > 1 else None  # gives tuples
        escaped_before, batch_size = self._escaped_before, self.batch_size
        batch = Batch(list(wanted))
        rows, lines = batch.rows, batch.lines
        offset = self._line_offset  # a share's lines are numbered from its first
        start = offset + reader.line_num + 1
        while True:
            try:
                record = next_record()
            except StopIteration:
                break
            except csv.Error as error:
                if "unexpected end of data" in str(error):
                    self.ended_inside_record = True
                batch.problems[len(rows)] = _malformed(error, start, offset + reader.line_num)
                rows.append([None] * len(wanted))
                lines.append(start)
                start = offset + reader.line_num + 1
                continue
            if not record:  # a blank line is not a row
                start = offset + reader.line_num + 1
                continue
            if len(record) != width:
                batch.problems[len(rows)] = (
                    f"malformed line: expected {width} fields, found {len(record)}"
                )
                record = (record + [None] * width)[:width]
            values = pick(record) if pick else [record[p] for p in positions]
            # _may_have_escapes, inline: it would be a call per row.
            if _ESCAPED[0] != escaped_before and any(
                v is not None and has_surrogates(v) for v in values
            ):
                batch.problems.setdefault(len(rows), UNDECODABLE)
                values = [visible(v) if v is not None else None for v in values]
            rows.append(values)
            lines.append(start)
            start = offset + reader.line_num + 1
            if len(rows) >= batch_size:
                yield batch
                batch = Batch(list(wanted))
                rows, lines = batch.rows, batch.lines
        if rows:
            yield batch

    def look_ahead_for(self, keys: list[str], limit: int = JSON_LOOK_AHEAD) -> int:
        """JSONL: read on (holding the lines for :meth:`batches`) until each of ``keys``
        has appeared or ``limit`` lines are held, and add the keys found to the columns.

        A stream's first record need not carry every key, but a key that no line in the
        first ``limit`` carries is almost surely misnamed. Returns the lines held."""
        if self.format != "jsonl":
            return 0
        missing = [key for key in keys if key not in self.columns]
        while missing and len(self._head) < limit:
            item = next(self._pending, None)
            if item is None:
                break
            self._head.append(item)
            for key in [k for k in missing if k in item[1]]:
                self.columns.append(key)
                missing.remove(key)
        return len(self._head)

    def keys_held(self) -> list[str]:
        """JSONL: every key of the lines read so far, in order of first appearance."""
        return list(dict.fromkeys(key for _, record, _, _ in self._head for key in record))

    def read_every_key(self) -> None:
        """Read every JSON line now and make the columns every key of every line, in order
        of first appearance (for input that fits in memory; streaming uses look_ahead_for)."""
        self._head, self._pending = list(itertools.chain(self._head, self._pending)), iter(())
        self.columns = self.keys_held()

    def _json_records(self):
        for number, line in enumerate(self._handle, start=self._line_offset + 1):
            if not line.strip():
                continue
            if self._may_have_escapes() and has_surrogates(line):
                yield number, {}, UNDECODABLE, visible(line)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, {}, f"malformed JSON: {error.msg} at column {error.colno}", line
                continue
            if not isinstance(record, dict):
                yield (
                    number,
                    {},
                    f"malformed line: expected a JSON object, found {type(record).__name__}",
                    line,
                )
                continue
            # The line goes along with its record: a nested value may yet make it a reject.
            yield number, record, None, line

    def _json_batches(self, wanted):
        batch = Batch(list(wanted))
        records = itertools.chain(self._head, self._pending)
        for number, record, problem, raw in records:
            row, nested = _cells(wanted, [record.get(c) for c in wanted])
            if not nested and any(v is not None and has_surrogates(v) for v in row):
                # A JSON escape of half a character ("\\ud83d"): no UTF-8 text can hold it.
                nested = "undecodable text: a lone surrogate escape, half of a character"
                row = [None if v is None else visible(v) for v in row]
            if problem := problem or nested:
                batch.problems[len(batch)] = problem
                batch.raw[len(batch)] = raw.rstrip("\r\n")
            batch.rows.append(row)
            batch.lines.append(number)
            if len(batch) >= self.batch_size:
                yield batch
                batch = Batch(list(wanted))
        if len(batch):
            yield batch

    def _parquet_batches(self, wanted):
        import pyarrow as pa  # as above: Parquet only

        # A Parquet column has one type: only a list or struct column needs its values checked.
        schema = self._parquet.schema_arrow
        nested = any(pa.types.is_nested(schema.field(c).type) for c in wanted)
        line = 1
        for record_batch in self._parquet.iter_batches(
            batch_size=self.batch_size, columns=list(wanted)
        ):
            columns = [record_batch.column(c).to_pylist() for c in wanted]
            if nested:
                cells = [_cells(wanted, values) for values in zip(*columns)]
                rows = [row for row, _ in cells]
                problems = {index: problem for index, (_, problem) in enumerate(cells) if problem}
            else:
                rows, problems = (
                    [[None if v is None else str(v) for v in values] for values in zip(*columns)],
                    {},
                )
            self._rows_read = line - 1 + len(rows)
            yield Batch(list(wanted), rows, list(range(line, line + len(rows))), problems)
            line += len(rows)


def _cells(columns: list[str], values) -> tuple[list[str | None], str | None]:
    """A record's values as the strings a Batch holds, and the reason to reject the record where
    its text, target or id is an array or an object: str() would make of ["a", "b"] a text the
    model happily scores."""
    problem = None
    for column, value in zip(columns, values):
        if isinstance(value, (list, dict)):
            kind = "an array" if isinstance(value, list) else "an object"
            problem = (
                problem or f"malformed line: {column!r} holds {kind}; expected a string or a number"
            )
    row = [None if v is None or isinstance(v, (list, dict)) else str(v) for v in values]
    return row, problem


def _malformed(error: csv.Error, start: int, end: int) -> str:
    if "unexpected end of data" in str(error):
        reason = "malformed line: a quoted field opened here is never closed"
    elif "field larger than field limit" in str(error):
        reason = (
            f"malformed line: a field is longer than {csv.field_size_limit():,} characters, the "
            "most a CSV field may hold; "
            "split the text into shorter rows (or predict it as a document with --documents)"
        )
    else:
        reason = f"malformed line: {error}"
    if end > start:
        reason += f" (lines {start}-{end} were read as one record; look for an unbalanced quote)"
    return reason


def require_path(path, what: str = "", folder: bool = False):
    """``path`` if it exists (and is a file, unless ``folder``), else a DataError saying where data
    is looked for.
    """
    path_text = f"{what} {path}" if what else str(path)
    if not Path(path).exists():
        raise DataError(
            f"{path_text} does not exist. Data paths in experiments are relative to the data root: "
            "set it with --data-dir DIR "
            "or STANCE_DATA_DIR (for the public datasets: STANCE_DATA_DIR=../shared/data)."
        )
    if not folder and Path(path).is_dir():
        raise DataError(f"{path_text} is a folder; expected a file.")
    return path


def read_all(source: str | Path, fmt: str) -> tuple[list[str], Batch]:
    """The whole table as one batch (for training data, which fits in memory).

    Read whole, JSON lines can name their columns from every line's keys rather than
    the first record's, so a key that first appears on a later line is not lost."""
    with Table(source, fmt, batch_size=sys.maxsize) as table:
        if fmt == "jsonl":
            table.read_every_key()
        batches = list(table.batches())
        columns = table.columns
    if not batches:
        return columns, Batch(columns)
    return columns, batches[0]


def write_atomic(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write ``frame`` beside ``path`` and rename it there: a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    write_table(frame, temporary, fmt)
    os.replace(temporary, path)


def write_table(frame: pd.DataFrame, target, fmt: str, header: bool = True) -> None:
    """``frame`` as CSV, TSV, JSON lines or Parquet, to a path or an open binary stream."""
    if fmt in ("csv", "tsv"):
        frame = _floats_as_text(frame)
        frame.to_csv(
            target,
            index=False,
            sep="," if fmt == "csv" else "\t",
            header=header,
            lineterminator="\n",
        )
    elif fmt == "jsonl":
        if len(frame):
            frame.to_json(target, orient="records", lines=True, force_ascii=False)
        elif not hasattr(target, "write"):  # pandas writes "\n" for no rows: a blank line
            Path(target).write_bytes(b"")
    else:
        frame.to_parquet(target, index=False)


def _floats_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each float column as the shortest text that reads back as the same
    number (a missing value as an empty cell, as pandas writes it), by Arrow's formatter: 0.020 s
    for 10,000 rows of three probabilities where pandas takes 0.036 s, a tenth of a fast model's
    prediction. Arrow writes 1 for 1.0 and 6.3e-05 as 0.000063; both read back exactly."""
    floats = [name for name, dtype in frame.dtypes.items() if dtype.kind == "f"]
    if not floats or not len(frame):
        return frame
    import pyarrow as pa  # as for Parquet: not in the start-up of commands that write no floats
    import pyarrow.compute as pc

    text = {
        name: pc.cast(pa.array(frame[name].to_numpy(), from_pandas=True), pa.string()).to_numpy(
            zero_copy_only=False
        )
        for name in floats
    }
    return frame.assign(**text)
