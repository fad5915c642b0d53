"""Where a text table file may be cut, so that each worker reads its own share of it.

``stance predict`` over one large CSV, TSV or JSON Lines file used to be bounded by its main
process, which read and parsed every row before a worker saw it. :func:`plan` cuts the file
into :class:`ByteRange` shares of about ``rows`` records each, at record boundaries, with the
line number each share starts on; a worker opens the file, reads its share with the same
reader as a whole-file read (:meth:`train.tables.Table.share`) and gets the same rows, the same
rejects and the same line numbers.

A cut is made after a line break, and in CSV and TSV only where the quotation marks before it
pair up: a line break inside a quoted field is part of the text. That count is exact for files
that quote as RFC 4180 does (every file pandas, spreadsheets and the csv module write). A quote
inside an unquoted field (``he said "no``) can mislead it; the reader then finds the share it
read ending inside a record (:attr:`train.tables.Table.ended_inside_record`), and the caller
reads the file whole instead. JSON Lines has no line break inside a record, so every line break
is a boundary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")

# What the readers count as the end of a line: they read text with newline="", which ends a
# line at \r\n, \r or \n, and number lines so.
_LINE_END = re.compile(rb"\r\n|\r|\n")
# Bytes read at once while planning: the plan costs one pass of bytes.count over the file.
_BLOCK = 1 << 24
# Bytes of the file's start used to estimate the bytes per record.
_SAMPLE = 1 << 20
# How shares are sized, in a resumable run's fingerprint: parts cut by another plan hold other
# rows. 2: by records (160e5b2); 1, unrecorded: by lines.
PLAN = 2


@dataclass(frozen=True)
class ByteRange:
    """One share of a file: the records from byte ``start`` up to byte ``end``, the first of
    them on line ``first_line``; ``last`` for the share that ends at the end of the file."""

    index: int
    start: int
    end: int
    first_line: int
    last: bool


def _line_ends(data: bytes, start: int, end: int) -> int:
    """Line ends in ``data[start:end]``, a span that does not end between a \\r and its \\n."""
    return (
        data.count(b"\n", start, end)
        + data.count(b"\r", start, end)
        - data.count(b"\r\n", start, end)
    )


class Shares(Generic[T]):
    """A file's shares (or what is made of each), found as they are asked for: the first share
    is handed out while the rest of the file is still being scanned (a pass of ``bytes.count``
    over every byte, 0.4 s for 200 MB). Iterating, indexing and ``len`` read on as far as they
    need."""

    def __init__(self, items: Iterable[T]):
        self._found: list[T] = []
        self._rest = iter(items)

    def _find(self, count: float) -> None:
        while len(self._found) < count:
            item = next(self._rest, None)
            if item is None:
                return
            self._found.append(item)

    def __iter__(self) -> Iterator[T]:
        index = 0
        while True:
            self._find(index + 1)
            if index >= len(self._found):
                return
            yield self._found[index]
            index += 1

    def __getitem__(self, index: int | slice):
        if isinstance(index, slice) or index < 0:
            self._find(float("inf"))
        else:
            self._find(index + 1)
        return self._found[index]

    def __len__(self) -> int:
        self._find(float("inf"))
        return len(self._found)

    def map(self, function: Callable[[T], U]) -> Shares[U]:
        return Shares(map(function, self))


def plan(path: str | Path, fmt: str, header_lines: int, rows: int) -> Shares[ByteRange] | None:
    """Shares of about ``rows`` records each of a CSV, TSV or JSON Lines file, whose first
    ``header_lines`` lines are its header (0 for JSON Lines); None where the file should be read
    whole (a header longer than the first MiB). The shares cover every byte after the header, in
    order; an empty file body gives one empty share.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE)
    start = 0
    for _ in range(header_lines):
        found = _LINE_END.search(sample, start)
        # A header that fills the sample, or ends on a \r the sample cuts from its \n, is left
        # to the whole-file reader.
        if found is None or (found.end() == len(sample) and len(sample) < size):
            return None
        start = found.end()
    body = sample[start:]
    quoted = fmt in ("csv", "tsv")
    records, through = _records(body, quoted)
    # Bytes per record over the records the sample holds whole (all of it when none ends there).
    per_record = (through or len(body)) / max(records, 1)
    step = max(int(per_record * rows), 1)
    return Shares(_shares(path, quoted, start, header_lines + 1, step, size))


def _records(data: bytes, quoted: bool) -> tuple[int, int]:
    """Records that end in ``data``, and the bytes up to the end of the last: its line breaks,
    in CSV and TSV only those where the quotation marks before them pair up. Counted as lines,
    FNC-1's articles of a dozen lines each made shares a twelfth of the rows asked, and each
    share featurised its bodies anew (3.3x slower on 20,000 pairs, benchmarks/RESULTS.md)."""
    records, quotes, through, position = 0, 0, 0, 0
    for line in data.split(b"\n")[:-1]:
        position += len(line) + 1
        quotes += line.count(b'"') if quoted else 0
        if quotes % 2 == 0:
            records, through = records + 1, position
    return records, through


def _shares(
    path: str | Path, quoted: bool, start: int, line: int, step: int, size: int
) -> Iterator[ByteRange]:
    """The shares from byte ``start`` (on line ``line``), each ending at the first record
    boundary at least ``step`` bytes after it starts."""
    begin, first_line, index = start, line, 0
    with open(path, "rb") as handle:
        handle.seek(start)
        base, quotes = start, 0  # line and quotes count from ``start`` up to ``base``
        wanted = start + step  # the next cut goes at the first boundary at or after this byte
        carry = b""
        while True:
            data = carry + handle.read(_BLOCK)
            if not data:
                break
            # A \r at the block's end may pair with a \n in the next block: keep it for then.
            carry = data[-1:] if data.endswith(b"\r") and base + len(data) < size else b""
            if carry:
                data = data[:-1]
            counted = 0  # data[:counted] is in ``line`` and ``quotes``
            while wanted < base + len(data):
                newline = data.find(b"\n", max(wanted - base, counted))
                if newline < 0:
                    break
                cut = newline + 1
                if quoted:
                    quotes += data.count(b'"', counted, cut)
                line += _line_ends(data, counted, cut)
                counted = cut
                if quoted and quotes % 2:  # inside a quoted field: try the next line break
                    wanted = base + cut
                    continue
                if base + cut < size:
                    yield ByteRange(index, begin, base + cut, first_line, last=False)
                    begin, first_line, index = base + cut, line, index + 1
                wanted = base + cut + step
            if quoted:
                quotes += data.count(b'"', counted)
            line += _line_ends(data, counted, len(data))
            base += len(data)
    yield ByteRange(index, begin, size, first_line, last=True)
