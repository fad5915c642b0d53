"""Batch prediction: files of sentences or folders of documents in, labels and probabilities out.

:func:`predict_file` does all the work; ``stance predict`` is a thin layer over it.

How a run proceeds:

1. The model is loaded from a path, ``runs:/ID/model`` or ``models:/NAME@ALIAS``
   (:func:`train.artifact.open_model`: fetched, its fingerprint checked, built from data).
2. The input is read in chunks; rows that cannot be predicted (empty text,
   missing target, undecodable bytes, malformed lines) are set aside with
   their line number and reason.
3. Chunks go to worker processes (``jobs``), or for a model with the sentence encoder run in
   this process on ``jobs`` threads; each writes its result and its rejects as part files in
   ``OUTPUT.parts/``, each part renamed into place only when complete.
4. When every chunk is done, the parts are joined into the output in input
   order, written under a temporary name and renamed: the output name never
   holds a partial file. An interrupted run leaves its finished parts, and
   ``resume=True`` predicts only the chunks that are missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.onnx_encoder import RECIPE
from features.pipeline import chunks_on_threads, threaded_steps
from train import documents as docs
from train import explain as explanations
from train import hardware, progress, ranges, workers
from train.artifact import LoadedModel, is_store_uri, open_model
from train.errors import DataError, StanceError
from train.modelfile import MANIFEST
from train.models import Cascade, StanceModel
from train.ranges import ByteRange
from train.scratch import scratch_folder
from train.tables import (
    LONGEST_MARKER,
    Batch,
    ColumnNames,
    Table,
    format_of,
    missing_marker,
    separator_hint,
    write_atomic,
)

REJECT_COLUMNS = ["line", "id", "reason", "text"]

# Rows per chunk for a model run on threads (a sentence encoder's): about a second of one core's
# work, so that every thread has chunks to take from the first seconds on.
THREADED_CHUNK_ROWS = 500


@dataclass(frozen=True)
class PredictOptions:
    """How to read the input and write the output. See ``stance predict --help``."""

    # A field without a column name reads the column of its own name; rows without an id
    # (no "id" column, or none named) are numbered by their line.
    columns: ColumnNames = ColumnNames()
    target: str | None = None
    documents: bool = False
    aggregate: str = "mean"
    input_format: str | None = None
    output_format: str | None = None
    chunk_size: int = 10_000
    jobs: int | None = None
    resume: bool = False
    rejects: str | None = None
    keep_text: bool = False
    progress: bool | None = None
    explain: int = 0  # features named per row in an ``explanation`` column; 0: none


@dataclass
class PredictSummary:
    rows_read: int = 0
    predicted: int = 0
    rejected: int = 0
    seconds: float = 0.0
    sentences: int = 0
    forwarded: int = 0  # rows (sentences) a cascade's fast model passed on to its accurate one
    rejects_path: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def line(self, unit: str = "rows") -> str:
        text = (
            f"{unit} read {self.rows_read:,}, predicted {self.predicted:,}, rejected "
            f"{self.rejected:,}, "
            f"{self.seconds:.1f}s, {_rate(self.rows_per_second)} {unit}/s"
        )
        if self.sentences:
            text += (
                f", {self.sentences:,} sentences "
                f"({_rate(self.sentences / max(self.seconds, 1e-9))}/s)"
            )
        if self.forwarded:
            answered = self.sentences or self.predicted
            text += (
                f"; the accurate model answered {self.forwarded:,} "
                f"({self.forwarded / max(answered, 1):.1%})"
            )
        if self.rejected and self.rejects_path:
            text += f"; rejects in {self.rejects_path}"
        return text


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


# --------------------------------------------------------------------------- input


@dataclass
class Chunk:
    index: int
    frame: pd.DataFrame  # line, id, text, target of rows to predict
    rejects: pd.DataFrame  # line, id, reason, text
    rows_read: int
    # How far into the input this chunk ends, in the unit of the input's extent (bytes, Parquet
    # rows or documents): what a progress bar counts.
    position: int = 0
    # A share of a file that ended inside a quoted field: its cut was misplaced (see
    # train.ranges), so neither this chunk nor the shares after it can be kept.
    misplaced_cut: bool = False


@dataclass
class Chunks:
    """An input's chunks, and how much input there is, for a progress bar: ``extent`` in
    ``unit`` (None where unknown: stdin)."""

    chunks: Iterator[Chunk] | ranges.Shares[Share]  # Shares: workers read their own
    extent: int | None
    unit: str

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self.chunks)


def _one_object_per_value(values: list[str]) -> pd.Series:
    """A column in which equal strings are one object, kept as Python objects rather than
    copied into Arrow: a chunk then pickles to its worker with each distinct text once (an FNC-1
    body serves dozens of headlines), and the feature steps that group equal texts find repeats
    by identity instead of comparing kilobytes."""
    first: dict[str, str] = {}
    return pd.Series([first.setdefault(v, v) for v in values], dtype=object)


def _blank(value) -> bool:
    return value is None or not str(value).strip()


def _suspect_rows(batch, texts: list, targets: list | None) -> list[int]:
    """The rows of a batch that may be rejected, in order: those with a read problem and those
    whose text or target, stripped, is short enough to be blank or a missing-value marker.
    Every other row is kept without a look at it in Python."""
    suspects = set(batch.problems)
    for values in (texts, targets):
        if values is None:
            continue
        if set(map(type, values)) - {str}:  # None: a missing cell
            suspects.update(range(len(values)))
            break
        lengths = np.fromiter(map(len, map(str.strip, values)), np.int64, count=len(values))
        suspects.update(np.flatnonzero(lengths <= LONGEST_MARKER).tolist())
    return sorted(suspects)


@dataclass(frozen=True)
class SentenceReading:
    """What :func:`sentence_chunks` settled from a file's header: which columns to read and how
    a batch of rows becomes a chunk. Pickled to a worker, it reads the worker's own share of the
    file as the main process would."""

    source: str
    fmt: str
    columns: tuple[str, ...]  # the file's, from its header (or first JSON records)
    wanted: tuple[str, ...]
    text_column: str
    target_column: str
    id_column: str
    use_target: bool  # read each row's target from target_column
    has_id: bool
    target: str | None  # every row's target, where use_target is False
    needs_target: bool

    def chunk(self, index: int, batch: Batch, position: int) -> Chunk:
        """The rows of ``batch`` to predict, and the rows set aside with their reasons."""
        texts = batch.column(self.text_column)
        targets = (
            batch.column(self.target_column)
            if self.use_target
            else [self.target or ""] * len(batch)
        )
        ids = batch.column(self.id_column) if self.has_id else [str(n) for n in batch.lines]
        rejects, rejected = [], set()
        for i in _suspect_rows(batch, texts, targets if self.needs_target else None):
            reason = batch.problems.get(i)
            if reason is None and _blank(texts[i]):
                reason = "empty text"
            if reason is None and (marker := missing_marker(texts[i])):
                reason = (
                    f"missing text: the cell reads {marker!r}, which is taken as a missing value"
                )
            if reason is None and self.needs_target and _blank(targets[i]):
                reason = "missing target"
            if reason is None and self.needs_target and (marker := missing_marker(targets[i])):
                reason = (
                    f"missing target: the cell reads {marker!r}, which is taken as a missing value"
                )
            if reason is not None:
                rejected.add(i)
                text = texts[i] if texts[i] is not None else batch.raw.get(i)
                rejects.append((batch.lines[i], ids[i], reason, text))
        lines = batch.lines
        if None in ids:  # a JSON line without the id key: numbered by its line
            ids = [str(n) if v is None else v for v, n in zip(ids, lines)]
        if rejected:
            keep = [i for i in range(len(batch)) if i not in rejected]
            lines, ids, texts, targets = (
                [values[i] for i in keep] for values in (lines, ids, texts, targets)
            )
        frame = pd.DataFrame(
            {
                "line": lines,
                "id": ids,
                "text": _one_object_per_value(texts),
                "target": _one_object_per_value(targets),
            }
        )
        rejects = pd.DataFrame(rejects, columns=REJECT_COLUMNS)
        return Chunk(index, frame, rejects, len(batch), position)

    def batches(self, table: Table, first_index: int = 0) -> Iterator[Chunk]:
        """The chunks of an open table, one per batch; a table without rows gives one empty
        chunk, so that the output still gets its header."""
        index = first_index - 1
        with table:
            for index, batch in enumerate(table.batches(list(self.wanted)), start=first_index):
                yield self.chunk(index, batch, table.position())
            if index < first_index:
                yield self.chunk(first_index, Batch(list(self.wanted)), table.position())


@dataclass(frozen=True)
class Share:
    """A chunk that its worker reads itself: one share of the input file."""

    reading: SentenceReading
    piece: ByteRange

    @property
    def index(self) -> int:
        return self.piece.index

    def read(self) -> Chunk:
        reading, piece = self.reading, self.piece
        table = Table.share(reading.source, reading.fmt, list(reading.columns), piece)
        [chunk] = reading.batches(table, piece.index)
        chunk.misplaced_cut = table.ended_inside_record and not piece.last
        return chunk


def sentence_chunks(
    source: str, options: PredictOptions, needs_target: bool, by_shares: bool = False
) -> tuple[SentenceReading, Chunks]:
    """Open the input (checking its columns now) and return how it is read, with its chunks.

    With ``by_shares``, a CSV, TSV or JSON Lines file (not stdin) comes as :class:`Share`
    chunks that workers read themselves, planned by :func:`train.ranges.plan`."""
    fmt = format_of(source, options.input_format)
    table = Table(source, fmt, options.chunk_size)
    columns = options.columns
    text_column, target_column, id_column = (
        columns.column(name) for name in ("text", "target", "id")
    )
    wanted = [text_column]
    use_target = options.target is None and needs_target
    if use_target:
        wanted.append(target_column)
    # An id column the user named must exist; the default "id" is used only where present.
    required = wanted + [id_column] if columns.id else wanted
    # A JSON line names only its own keys: a first record without a target is read past.
    lines_searched = table.look_ahead_for(required)
    missing = [c for c in required if c not in table.columns]
    # JSON lines name their own keys, so an id may first appear after line 1; rows without
    # one get their line number either way.
    has_id = id_column in table.columns or fmt == "jsonl"
    if has_id:
        wanted.append(id_column)
    if missing:
        table.close()
        fixes = []
        if text_column in missing:
            fixes.append("Name the text column with --text-column.")
        if use_target and target_column in missing:
            fixes.append(
                "The model reads the target: name its column with --target-column, or give every "
                'row one target with --target "...".'
            )
        if columns.id in missing:
            fixes.append(
                "Name the id column with --id-column, or leave the option out to number rows by "
                "their line."
            )
        names = " or ".join(repr(c) for c in missing)
        if fmt == "jsonl":
            found = (
                f"no line of the first {lines_searched} has the key {names}; found keys "
                f"{table.keys_held()}"
            )
        else:
            found = f"no column {names}; found columns {table.columns}"
        raise DataError(f"{source}: {found}.{separator_hint(table.columns, fmt)} {' '.join(fixes)}")
    reading = SentenceReading(
        str(source),
        fmt,
        tuple(table.columns),
        tuple(wanted),
        text_column,
        target_column,
        id_column,
        use_target,
        has_id,
        options.target,
        needs_target,
    )
    pieces = None
    if by_shares and fmt != "parquet" and source != "-" and Path(source).is_file():
        pieces = ranges.plan(source, fmt, table.header_lines(), options.chunk_size)
    if pieces is None:
        return reading, Chunks(reading.batches(table), *table.extent())
    size = table.extent()[0]
    table.close()
    return reading, Chunks(pieces.map(functools.partial(Share, reading)), size, "bytes")


def check_document_target(options: PredictOptions, needs_target: bool) -> None:
    if needs_target and not options.target:
        raise DataError(
            'This model reads the target, and documents have no target column: pass --target "...".'
        )


def document_chunks(
    source: str, options: PredictOptions, needs_target: bool
) -> tuple[list[Path], Chunks]:
    """List the documents now (a bad path fails before any output exists) and return
    their files and a generator of chunks that reads each document in its turn."""
    check_document_target(options, needs_target)
    documents = docs.document_sources(source)
    return [file for _, file in documents if file is not None], Chunks(
        _document_chunks(documents, options), len(documents), "documents"
    )


def _document_chunks(
    documents: list[tuple[str, Path | None]], options: PredictOptions
) -> Iterator[Chunk]:
    per_chunk = max(1, options.chunk_size // 100)  # about 100 sentences per news article
    for index, start in enumerate(range(0, len(documents), per_chunk)):
        kept, rejects = [], []
        # "line" is the document's position in the corpus: unique, unlike ids can be.
        for line, (doc_id, file) in enumerate(
            documents[start : start + per_chunk], start=start + 1
        ):
            text, problem = docs.read_document(file)
            if problem:
                rejects.append((line, doc_id, problem, ""))
            else:
                kept.append((line, doc_id, text))
        frame = pd.DataFrame(kept, columns=["line", "id", "text"]).assign(
            target=options.target or ""
        )
        yield Chunk(
            index,
            frame,
            pd.DataFrame(rejects, columns=REJECT_COLUMNS),
            len(kept) + len(rejects),
            min(start + per_chunk, len(documents)),
        )


# --------------------------------------------------------------------------- workers


def _model() -> StanceModel:
    """The model of this prediction, shared by the process that runs it with its workers."""
    return workers.shared()


def _predict(X: pd.DataFrame, explain: int) -> tuple[pd.DataFrame, int]:
    """The model's predictions of ``X`` (text and target), explained if asked, and how many rows
    a cascade forwarded to its accurate model."""
    model = _model()
    if explain and isinstance(model, Cascade):
        out, forward = model.route(
            X, functools.partial(explanations.predict_explained, top=explain)
        )
    elif explain:
        out, forward = explanations.predict_explained(model, X, explain), ()
    else:
        out, forward = model.route(X)
    return out, int(np.count_nonzero(forward))


def predict_sentences(
    frame: pd.DataFrame, keep_text: bool, explain: int = 0
) -> tuple[pd.DataFrame, int]:
    forwarded = 0
    if not len(frame):
        out = _empty_prediction()
        if explain:
            out["explanation"] = pd.Series(dtype=object)
    else:
        out, forwarded = _predict(frame[["text", "target"]], explain)
    columns = {"id": frame["id"].to_numpy()}
    if keep_text:
        columns |= {"target": frame["target"].to_numpy(), "text": frame["text"].to_numpy()}
    return pd.concat([pd.DataFrame(columns, index=out.index), out], axis=1), forwarded


def _empty_prediction() -> pd.DataFrame:
    return pd.DataFrame(
        {"label": pd.Series(dtype=object)}
        | {f"proba_{label}": pd.Series(dtype=float) for label in _model().labels}
    )


def predict_documents(
    frame: pd.DataFrame, rule: str, explain: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, int, int]:
    """Sentence and document rows, rejects, the sentences predicted and how many a cascade
    forwarded."""
    labels = _model().labels
    sentence_rows, rejects = [], []
    for line, doc_id, text, target in frame[["line", "id", "text", "target"]].itertuples(
        index=False
    ):
        spans = docs.split_sentences(text)
        if not spans:
            rejects.append((line, doc_id, "empty document: no sentences", ""))
            continue
        sentence_rows.append(
            pd.DataFrame(
                {
                    "document": line,
                    "id": doc_id,
                    "level": "sentence",
                    "sentence_index": np.arange(len(spans)),
                    "start": [a for a, _ in spans],
                    "end": [b for _, b in spans],
                    "target": target,
                    "text": [text[a:b] for a, b in spans],
                }
            )
        )
    columns = (
        ["id", "level", "sentence_index", "start", "end", "target", "text", "label"]
        + [f"proba_{label}" for label in labels]
        + [f"share_{label}" for label in labels]
        + ["margin"]
    )
    columns += ["explanation"] if explain else []
    if not sentence_rows:
        return pd.DataFrame(columns=columns), pd.DataFrame(rejects, columns=REJECT_COLUMNS), 0, 0
    sentences = pd.concat(sentence_rows, ignore_index=True)
    # Sentence rows only are explained: a document's label is an aggregate, not a sum of feature
    # weights.
    predicted, forwarded = _predict(sentences[["text", "target"]], explain)
    sentences = pd.concat([sentences, predicted], axis=1)
    rows = []
    for _, group in sentences.groupby("document", sort=False):
        rows.append(group)
        summary = docs.aggregate(group, labels, rule)
        rows.append(
            pd.DataFrame(
                [
                    {
                        "id": group["id"].iloc[0],
                        "level": "document",
                        "sentence_index": -1,
                        "start": 0,
                        "end": int(group["end"].max()),
                        "target": group["target"].iloc[0],
                        "text": "",
                    }
                    | summary
                ]
            )
        )
    out = pd.concat(rows, ignore_index=True).reindex(columns=columns)
    out[["sentence_index", "start", "end"]] = out[["sentence_index", "start", "end"]].astype(
        "int64"
    )
    return out, pd.DataFrame(rejects, columns=REJECT_COLUMNS), len(sentences), forwarded


def _run_chunk(task) -> dict:
    """Predict one chunk (reading it first if it is a :class:`Share`) and write its part files;
    returns the chunk's counts."""
    item, parts, fmt, options = task
    started = time.perf_counter()
    chunk = item.read() if isinstance(item, Share) else item
    if chunk.misplaced_cut:  # nothing of it may be written: the caller reads on by lines
        return {"index": chunk.index, "misplaced_cut": True}
    if options.documents:
        out, rejects, sentences, forwarded = predict_documents(
            chunk.frame, options.aggregate, options.explain
        )
        predicted = int((out["level"] == "document").sum()) if len(out) else 0
    else:
        out, forwarded = predict_sentences(chunk.frame, options.keep_text, options.explain)
        rejects, sentences = pd.DataFrame(columns=REJECT_COLUMNS), 0
        predicted = len(out)
    if len(rejects):  # reading's rejects and prediction's, in input order
        rejects = pd.concat([chunk.rejects, rejects], ignore_index=True).sort_values(
            "line", kind="stable", ignore_index=True
        )
    else:
        rejects = chunk.rejects
    counts = {
        "index": chunk.index,
        "rows_read": chunk.rows_read,
        "predicted": predicted,
        "rejected": len(rejects),
        "sentences": sentences,
        "forwarded": forwarded,
        "position": chunk.position,
    }
    counts["unseen_targets"] = _model().unseen_targets(
        out.loc[out["level"] == "document", "target"]
        if options.documents
        else chunk.frame["target"]
    )
    if (
        counts["predicted"] + counts["rejected"] != counts["rows_read"]
    ):  # pragma: no cover - an invariant
        raise AssertionError(f"chunk {chunk.index}: predicted + rejected != read: {counts}")
    stem = parts / f"{chunk.index:08d}"
    write_atomic(out, Path(f"{stem}.out"), fmt)
    write_atomic(rejects.astype({"line": "int64"}), Path(f"{stem}.rejects"), "csv")
    counts["seconds"] = time.perf_counter() - started
    Path(f"{stem}.json.tmp").write_text(json.dumps(counts))
    os.replace(f"{stem}.json.tmp", f"{stem}.json")  # the chunk counts as done only once this exists
    return counts


def _ordered(
    tasks: Iterator,
    jobs: int,
    model: StanceModel,
    threads: int | None = None,
    chunks_at_once: bool = False,
) -> Iterator[dict]:
    """Run tasks on ``jobs`` processes, yielding results in task order, at most 2 per worker in
    flight. With ``threads``, in this process instead: ``chunks_at_once``, several chunks on that
    many threads, each with one BLAS and onnxruntime thread; otherwise one chunk at a time, its
    BLAS and onnxruntime on that many threads.
    """
    with workers.fewer_collections():
        if threads and chunks_at_once:
            with (
                workers.sharing(model),
                threadpool_limits(1),
                ThreadPoolExecutor(threads, thread_name_prefix="stance-chunk") as pool,
            ):
                yield from _in_order(pool, tasks, threads)
            return
        if jobs == 1:
            with (
                workers.sharing(model),
                threadpool_limits(threads) if threads else contextlib.nullcontext(),
            ):
                for task in tasks:
                    yield _run_chunk(task)
            return
        with workers.pool(jobs, model) as pool:
            yield from _in_order(pool, tasks, jobs)


def _in_order(pool: Executor, tasks: Iterator, width: int) -> Iterator[dict]:
    pending = deque()
    try:
        for task in tasks:
            pending.append(pool.submit(_run_chunk, task))
            if len(pending) >= 2 * width:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # a failed chunk or an interrupt: start no more
            future.cancel()


# --------------------------------------------------------------------------- output


def _join_parts(files: list[Path], destination, fmt: str, header: bool = True) -> None:
    """Concatenate part files in order into an open binary stream (``header=False``: drop the first
    part's header too).
    """
    if fmt == "parquet":
        import pyarrow.parquet as pq  # 0.14 s, for Parquet outputs only

        tables = [pq.read_table(f) for f in files]
        schema = next((t.schema for t in tables if t.num_rows), tables[0].schema)
        writer = pq.ParquetWriter(destination, schema)
        for table in tables:
            if table.num_rows:
                writer.write_table(table.cast(schema))
        writer.close()
        return
    for position, file in enumerate(files):
        with open(file, "rb") as handle:
            if (position or not header) and fmt in ("csv", "tsv"):
                handle.readline()  # each part has a header; keep the first only
            shutil.copyfileobj(handle, destination)


def _fingerprint(
    source: str, files: list[Path], model_identity: str, options: PredictOptions, fmt: str
) -> dict:
    """What must not change between an interrupted run and its resumption: the input
    files (every document of a folder), the model and the settings."""
    settings = {
        k: v
        for k, v in asdict(options).items()
        if k not in ("jobs", "resume", "progress", "rejects")
    }
    stats = [(str(file), file.stat()) for file in files]
    return {
        "input": str(Path(source).resolve()),
        "input_files": hashlib.sha256(
            "\n".join(f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in stats).encode()
        ).hexdigest(),
        "model": model_identity,
        "output_format": fmt,
        "settings": settings,
    }


def _finished(parts: Path) -> list[int]:
    """The chunks whose parts are complete, in input order (their counts file exists)."""
    return sorted(int(p.name.split(".")[0]) for p in parts.glob("[0-9]*.json"))


def _prepare_parts(parts: Path, fingerprint: dict | None, resume: bool) -> set[int]:
    """Create or check the parts folder; returns the chunk indexes already done."""
    state = parts / "state.json"
    if parts.exists():
        if not resume:
            raise StanceError(
                f"{parts} holds the finished chunks of an interrupted run. Rerun with --resume to "
                "continue it, or delete the folder to start over."
            )
        try:
            previous = json.loads(state.read_text()) if state.exists() else None
        except ValueError:  # damaged: as good as missing, so the resumption is refused below
            previous = None
        if previous != fingerprint:
            changed = sorted(
                k for k in (fingerprint or {}) if (previous or {}).get(k) != fingerprint[k]
            )
            raise StanceError(
                f"Cannot resume from {parts}: {', '.join(changed) or 'its state'} changed since "
                "the interrupted run. Delete the folder to start over."
            )
        return set(_finished(parts))
    parts.mkdir(parents=True)
    state.write_text(json.dumps(fingerprint))
    return set()


def predict_file(
    model: str | LoadedModel,
    source: str,
    output: str,
    options: PredictOptions = PredictOptions(),
    log=None,
) -> PredictSummary:
    """Predict every row (or document) of ``source`` with ``model`` and write ``output``.

    Returns the counts; rows predicted + rows rejected = rows read, checked per chunk and overall.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    started = time.perf_counter()
    if options.aggregate not in docs.AGGREGATIONS:
        raise StanceError(
            f"aggregate must be one of {docs.AGGREGATIONS}, got {options.aggregate!r}."
        )
    if options.chunk_size < 1:
        raise StanceError(f"chunk size must be at least 1, got {options.chunk_size}.")
    if options.jobs is not None and options.jobs < 1:
        raise StanceError(f"jobs must be at least 1 (or None for every core), got {options.jobs}.")
    if options.explain < 0:
        raise StanceError(
            f"explain names that many features per row, 0 (none) or more; got {options.explain}."
        )
    _check_columns(options)
    rejects_path = options.rejects or _default_rejects(output)
    _refuse_to_overwrite(source, output, rejects_path, model_location(model))
    _check_destinations(output, rejects_path)
    workers.keep_freed_memory()
    # Shown from the start: loading an accurate model takes seconds.
    unit = _extent_unit(source, options)
    size = Path(source).stat().st_size if unit == "bytes" and Path(source).is_file() else None
    bar = progress.bar(options.progress, size, unit, "loading the model", log)
    try:
        loaded = model if isinstance(model, LoadedModel) else open_model(model)
    except BaseException:
        bar.close()
        raise
    for note in loaded.notes:
        bar.log(f"note: {note}")  # above the bar, which is drawn already
    stance_model = loaded.model
    jobs = options.jobs or os.cpu_count() or 1
    threads, chunks_at_once = None, False
    if isinstance(stance_model, StanceModel) and threaded_steps(stance_model.step_names()):
        # A sentence encoder spends its time in products that leave the GIL, so its model runs
        # in one process on `jobs` threads (one model in memory, not one per worker). On
        # onnxruntime a text's vector does not depend on the texts encoded with it, so chunks
        # run at once, each product on one core, in chunks small enough to keep every thread
        # busy: neither the chunks nor which thread meets a repeated text first changes a digit.
        # (4,000 ArgQ rows, whole command: 1.49x from two cores, against 1.37x with each
        # product split over them; benchmarks/RESULTS.md, Start-up.) On numpy, whose sums
        # follow the batch's padded width, one chunk at a time, its products on `jobs` threads.
        jobs, threads = 1, jobs
        chunks_at_once = chunks_on_threads(stance_model.config.get("features", {}))
        if chunks_at_once:
            options = dataclasses.replace(
                options, chunk_size=min(options.chunk_size, THREADED_CHUNK_ROWS)
            )
    if options.explain:
        explanations.check_explainable(stance_model)
    to_stdout = output == "-"
    fmt = options.output_format or ("csv" if to_stdout else format_of(output))
    if to_stdout and fmt == "parquet":
        raise StanceError(
            "Parquet cannot be streamed to stdout; write it to a file (-o out.parquet)."
        )
    if options.resume and (source == "-" or to_stdout):
        raise StanceError(
            "--resume needs a named input file and output file; stdin and stdout cannot be resumed."
        )

    if options.documents:
        input_files, chunks = document_chunks(source, options, stance_model.needs_target)
    else:
        _, chunks = sentence_chunks(source, options, stance_model.needs_target, by_shares=True)
        input_files = [Path(source)] if source != "-" else []
    shares = chunks.chunks if isinstance(chunks.chunks, ranges.Shares) else None

    # Parts of a stdout run cannot be resumed, so they live in a private scratch folder: removed
    # at the end, and by the next run should a kill or a second Ctrl-C leave it (train.scratch).
    scratch = contextlib.ExitStack()
    if to_stdout:
        work = Path(scratch.enter_context(scratch_folder("predict"))) / "parts"
    else:
        work = Path(output + ".parts")
    fingerprint = (
        _fingerprint(source, input_files, loaded.identity(), options, fmt)
        | {
            "reading": "lines" if shares is None else "shares",
            # Parts are numbered by the plan that cut them, and their probabilities' last bits
            # follow the kernels: a resumption must have both as the run it continues.
            "plan": ranges.PLAN,
            "kernels": {name: os.environ.get(name) for name in hardware.PINNED_KERNELS},
            "encoder_graph": RECIPE,
        }
        if not (to_stdout or source == "-")
        else None
    )
    done = _prepare_parts(work, fingerprint, options.resume)
    items = chunks.chunks
    # An interrupted run that read on by lines from a misplaced cut: so does its resumption.
    if shares is not None and (work / TAKEOVER).exists():
        takeover = _recorded_takeover(work, shares)
        items = itertools.chain(
            shares[: takeover["share"]], _lines_after(shares, takeover, options.chunk_size)
        )
    summary = PredictSummary()
    unseen = Counter()  # rows per target a per-target model has no weights for
    bar.total = chunks.extent
    bar.set_description_str("predicting")
    started_rows, resumed_rows = time.perf_counter(), 0
    stdout = sys.stdout.buffer if to_stdout else None
    written = 0
    try:

        def tasks(items):
            for chunk in items:
                if chunk.index in done:
                    continue
                yield chunk, work, fmt, options

        def results(items, done):
            # In chunk order, with the chunks finished by an earlier run merged in.
            ordered = _ordered(tasks(items), jobs, stance_model, threads, chunks_at_once)
            try:
                for counts in _merge_done(ordered, work, done):
                    if not counts.get("misplaced_cut"):
                        yield counts
                        continue
                    # Closing the pool waits for the chunks in flight, which must not write
                    # their parts after the takeover deletes them.
                    ordered.close()
                    # The shares before it are done and counted: only the rest is read on.
                    takeover = _take_over(work, shares, counts["index"], done)
                    later = {index for index in done if index >= len(shares)}
                    yield from results(_lines_after(shares, takeover, options.chunk_size), later)
                    return
            finally:
                ordered.close()

        for counts in results(items, done):
            summary.rows_read += counts["rows_read"]
            summary.predicted += counts["predicted"]
            summary.rejected += counts["rejected"]
            summary.sentences += counts["sentences"]
            summary.forwarded += counts.get("forwarded", 0)  # parts of older runs lack it
            unseen.update(counts.get("unseen_targets", {}))
            if chunks.extent is None:  # stdin or a pipe: no size, so rows
                bar.update(counts["rows_read"])
            else:
                bar.update(counts.get("position", bar.n) - bar.n)
            if chunks.unit == "bytes":  # what a reader wants besides is rows
                rate = (summary.rows_read - resumed_rows) / max(
                    time.perf_counter() - started_rows, 1e-9
                )
                bar.set_postfix_str(f"{summary.rows_read:,} rows, {rate:,.0f} rows/s", False)
            elif chunks.unit == "documents":
                bar.set_postfix_str(f"{summary.sentences:,} sentences", False)
            if counts.get("resumed"):
                resumed_rows += counts["rows_read"]
            if stdout is not None:
                _join_parts([work / f"{counts['index']:08d}.out"], stdout, fmt, header=not written)
                stdout.flush()
                written += 1
        bar.close()
        if (
            summary.predicted + summary.rejected != summary.rows_read
        ):  # pragma: no cover - an invariant
            raise AssertionError(
                f"predicted {summary.predicted} + rejected {summary.rejected} != read "
                f"{summary.rows_read}"
            )
        summary.rejects_path = _publish(
            work,
            _finished(work),
            None if to_stdout else Path(output),
            fmt,
            rejects_path,
            summary.rejected,
        )
        if to_stdout:  # the whole private folder goes
            scratch.close()
        else:
            shutil.rmtree(work)
    except BaseException as error:
        bar.close()
        for temporary in work.glob("*.tmp") if work.exists() else ():
            temporary.unlink()
        if to_stdout:
            with contextlib.suppress(OSError):  # chunk threads may still be writing parts
                scratch.close()
        elif source == "-":
            shutil.rmtree(work, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, BrokenPipeError):
            raise _write_failure(error, work, not (to_stdout or source == "-")) from None
        raise
    summary.seconds = time.perf_counter() - started
    log(summary.line("documents" if options.documents else "rows"))
    note = stance_model.unseen_target_note(unseen, "documents" if options.documents else "rows")
    if note:
        log(note)
    return summary


def _write_failure(error: OSError, work: Path, resumable: bool) -> StanceError:
    """A file system error during the run (a full disk, a quota, a folder removed) in one line:
    what failed, and what of the work is kept."""
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up"}.get(
        error.errno, error.strerror or str(error)
    )
    where = f" writing {error.filename}" if error.filename else ""
    finished = len(_finished(work)) if work.exists() else 0
    kept = (
        f"The {finished} chunks finished are kept in {work} and nothing else was written; free "
        "space and run the same command with --resume to finish byte for byte as one run would."
        if resumable
        else "Nothing is kept (stdin or stdout cannot be resumed); free space and run it again."
    )
    return StanceError(f"Prediction stopped: {reason}{where}. {kept}")


def _merge_done(results: Iterator[dict], work: Path, done: set[int]) -> Iterator[dict]:
    """Counts of all chunks in index order: finished earlier (read from disk) or computed now."""
    waiting = deque(sorted(done))

    def finished(index: int) -> dict:
        return json.loads((work / f"{index:08d}.json").read_text()) | {"resumed": True}

    for counts in results:
        while waiting and waiting[0] < counts["index"]:
            yield finished(waiting.popleft())
        yield counts
    while waiting:
        yield finished(waiting.popleft())


# The file in a parts folder that records where reading by lines took over from shares.
TAKEOVER = "takeover.json"


def _take_over(work: Path, shares: list[Share], misplaced: int, done: set[int]) -> dict:
    """Give up the shares from ``misplaced`` on, whose cuts a stray quote misplaced: delete
    their parts and record that from there on the file is read by lines, into chunks numbered
    after every share (so the order of the parts stays the order of the input). Recorded in the
    parts folder, a resumed run reads the same way."""
    for index in range(misplaced, len(shares)):
        for suffix in (".out", ".rejects", ".json"):
            (work / f"{index:08d}{suffix}").unlink(missing_ok=True)
        done.discard(index)
    piece = shares[misplaced].piece
    takeover = {"share": misplaced, "start": piece.start, "line": piece.first_line}
    (work / TAKEOVER).write_text(json.dumps(takeover))
    return takeover


def _recorded_takeover(work: Path, shares) -> dict:
    """The takeover an interrupted run recorded, if it is the one this plan makes: the plan is
    the same for the same file and settings, so a record that differs was damaged or written by
    someone else, and must not choose which bytes are read."""
    try:
        recorded = json.loads((work / TAKEOVER).read_text())
        share = recorded["share"]
        piece = shares[share].piece if type(share) is int and 0 <= share < len(shares) else None
    except (OSError, ValueError, TypeError, KeyError):
        piece = None
    if piece is None or recorded != {
        "share": share,
        "start": piece.start,
        "line": piece.first_line,
    }:
        raise StanceError(
            f"Cannot resume from {work}: its {TAKEOVER} does not match this input's plan (damaged "
            "or edited). Delete the folder to start over."
        )
    return recorded


def _lines_after(shares: list[Share], takeover: dict, chunk_size: int) -> Iterator[Chunk]:
    """The rest of the file from a takeover, read by lines, in chunks numbered after every
    share."""
    reading, size = shares[0].reading, shares[-1].piece.end
    rest = ByteRange(len(shares), takeover["start"], size, takeover["line"], last=True)
    table = Table.share(reading.source, reading.fmt, list(reading.columns), rest, chunk_size)
    return reading.batches(table, len(shares))


def _publish(
    work: Path, indexes: list[int], output: Path | None, fmt: str, rejects: str, rejected: int
) -> str | None:
    """Join the parts into the output and, when a row was rejected, the rejects file; returns
    the rejects file's path. Both are written under temporary names first and renamed only
    when both are complete, so a run that fails here (a full disk) leaves neither file rather
    than an output whose rows do not add up without its rejects."""
    staged: list[tuple[Path, Path]] = []
    try:
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            staged.append((output.with_name(f".{output.name}.{os.getpid()}.tmp"), output))
            with open(staged[-1][0], "wb") as handle:
                _join_parts([work / f"{i:08d}.out" for i in indexes], handle, fmt)
        if rejected:
            target = Path(rejects)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.append((target.with_name(f".{target.name}.{os.getpid()}.tmp"), target))
            with open(staged[-1][0], "wb") as handle:
                _join_parts([work / f"{i:08d}.rejects" for i in indexes], handle, "csv")
        for temporary, final in staged:
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    return rejects if rejected else None


def _check_destinations(output: str, rejects: str) -> None:
    """Every file the run will write must be writable before the first row is read: a run
    that fails at the end costs its whole time, and one that wrote its output but not its
    rejects would lose rows. A file is tried by creating a scratch file beside it."""
    places = (
        [("output", output), ("rejects file", rejects)]
        if output != "-"
        else [("rejects file", rejects)]
    )
    for kind, path in places:
        folder = Path(path).absolute().parent
        # A folder that does not exist yet is made at the end; what must be writable now is
        # the nearest one that exists, where it will be made. Nothing is created here.
        existing = next((f for f in (folder, *folder.parents) if f.exists()), folder)
        try:
            if not existing.is_dir():
                raise NotADirectoryError(20, "Not a directory")
            with tempfile.NamedTemporaryFile(dir=existing, prefix=".stance-probe-"):
                pass
        except OSError as error:
            option = "-o" if kind == "output" else "--rejects"
            raise StanceError(
                f"Cannot write the {kind} {path}: its folder {folder} is not writable "
                f"({error.strerror or error}). "
                f"Name a {kind} in a folder you can write to with {option}; nothing was read or "
                "written."
            ) from None


def _check_columns(options: PredictOptions) -> None:
    """Refuse the column options where they would be ignored, rather than ignore them."""
    given = options.columns.options_given() + (
        ["--input-format"] if options.input_format is not None else []
    )
    if options.documents and given:
        raise StanceError(
            f"{', '.join(given)}: {'an option' if len(given) == 1 else 'options'} for a file of "
            "sentences, but --documents reads plain-text documents: each one is "
            "named by its path, and --target gives the target. Leave out --documents to predict a "
            "table, or the table options to predict documents."
        )
    options.columns.check_one_target(options.target)


def model_location(model: str | LoadedModel) -> Path | None:
    """Where the model lies on this machine, if it is a local path (a ``runs:/`` or
    ``models:/`` model is fetched into a folder of its own)."""
    if isinstance(model, LoadedModel):  # one built in memory has no path
        return Path(model.path) if model.path else None
    return None if is_store_uri(model) else Path(model)


def inside_model(path: Path, model: Path) -> bool:
    """Whether ``path`` is the model, or a file in or under its folder (the model may be named by
    its folder or by the manifest in it)."""
    folder = model if model.is_dir() else model.parent if model.name == MANIFEST else None
    target = path.resolve()
    if target == model.resolve() or (path.exists() and model.exists() and path.samefile(model)):
        return True
    return folder is not None and folder.resolve() in target.parents


def _refuse_to_overwrite(source: str, output: str, rejects: str, model: Path | None) -> None:
    """The output is renamed over OUTPUT once complete, so an output (or rejects file) that names
    the input would silently replace the user's data with predictions, and one that names the
    model, or a file inside its folder, would destroy the model."""

    def same(a: str, b: str) -> bool:
        if "-" in (a, b):
            return False
        first, second = Path(a), Path(b)
        return (
            first.resolve() == second.resolve()
            or first.exists()
            and second.exists()
            and os.path.samefile(first, second)
        )

    for kind, path in (("output", output), ("rejects file", rejects)):
        if same(path, source):
            raise StanceError(
                f"The {kind} {path} is the input {source}: writing it would replace the input. "
                "Name another file; nothing was read or written."
            )
        if model is not None and path != "-" and inside_model(Path(path), model):
            raise StanceError(
                f"The {kind} {path} is the model {model} or lies inside its folder: writing it "
                "would damage the model. Name a file outside the model's folder; nothing was "
                "read or written."
            )
    if same(output, rejects):
        raise StanceError(
            f"The output and the rejects file are both {output}; name the rejects file with "
            "--rejects."
        )


def _default_rejects(output: str) -> str:
    if output == "-":
        return "stance-rejects.csv"
    path = Path(output)
    return str(path.with_name(path.name.split(".")[0] + ".rejects.csv"))


def _extent_unit(source: str, options: PredictOptions) -> str:
    """What a prediction's progress counts: documents, a Parquet file's rows, a file's bytes,
    or the rows of stdin or a pipe, whose size is unknown."""
    if options.documents:
        return "documents"
    if source == "-" or not Path(source).is_file():
        return "rows"
    try:
        return "rows" if format_of(source, options.input_format) == "parquet" else "bytes"
    except DataError:  # reported in its turn, once the model is loaded
        return "bytes"
