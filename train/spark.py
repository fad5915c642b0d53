"""``stance predict --engine spark``: batch prediction on Spark, by the local route's rules.

The rules hold because the same code applies them. A local input file (on a path every
executor reads, as any ``file:`` input of Spark's must be) is cut into shares of about
``--chunk-size`` rows by :func:`train.ranges.plan`, and each task reads its own shares with the
local route's reader (:class:`train.predict.Share`): one large file keeps every core busy, and
many small files share tasks. A file on a file system of Spark's own (``hdfs://``, ``s3a://``)
is read whole by one task through :func:`train.predict.sentence_chunks` (documents through
:func:`train.documents.decode_document`). Either way lines, ids and the reasons rows are
rejected for are those of ``stance predict`` without Spark. The rows are predicted by
:func:`train.predict.predict_sentences` or :func:`train.predict.predict_documents`, with the
model file the driver wrote and handed to Spark (``SparkContext.addFile``); each Python worker
checks its sha256 and loads it once, through the allow-list of types.

How a run proceeds:

1. read: one row per input row, of kind ``row`` or ``reject`` (``error`` for a file that is
   not a table the model can read: its message stops the run; ``misplaced`` for a share whose
   cut a stray quote misplaced, and then the run reads its files whole instead);
2. predict: predictions, with the rejects passed through, and per batch the rows it read and
   those a cascade forwarded, so that the counts are summed, not inferred;
3. the result is kept (``persist``) and written as two folders of Parquet files, the
   predictions and the rejects, both in input order: file, then line.

Measured against the alternatives (benchmarks/spark_predict.py, RESULTS "Spark"): this
``mapInPandas`` route over the stance model, and MLflow's ``spark_udf`` over the logged model.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import astuple, replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd
from threadpoolctl import threadpool_limits

from features.base import INSTALL_EXTRAS
from train import artifact, modelfile, workers
from train import documents as docs
from train import explain as explanations
from train.artifact import LoadedModel, open_model
from train.errors import DataError, StanceError
from train.models import StanceModel
from train.predict import (
    PredictOptions,
    PredictSummary,
    SentenceReading,
    Share,
    check_document_target,
    inside_model,
    model_location,
    predict_documents,
    predict_sentences,
    sentence_chunks,
)
from train.ranges import ByteRange, Shares
from train.scratch import scratch_folder
from train.tables import FORMATS, Table, format_of, is_skipped_name

DEFAULT_MASTER = "local[*]"
INSTALL = INSTALL_EXTRAS  # PySpark is the "spark" extra
JAVA_PACKAGE = "default-jre-headless"
REJECT_COLUMNS = ["file", "line", "id", "reason", "text"]
_READ_COLUMNS = ["kind", "file", "line", "id", "text", "target", "reason"]
_LONG = {"line", "sentence_index", "start", "end", "rows_read", "forwarded"}
_DOUBLE_PREFIXES = ("proba_", "share_", "margin")

# PySpark 4.3 warns at every pandas conversion that it does not yet fully support pandas 3; the
# tests hold this route to the local one's output, value for value, so the warning says nothing.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)


# --------------------------------------------------------------------------- the driver


def predict_spark(
    model: str | LoadedModel,
    source: str,
    output: str,
    options: PredictOptions | None = None,
    master: str = DEFAULT_MASTER,
    log=None,
) -> PredictSummary:
    """Predict every row (or document) of ``source`` on Spark and write ``output``, a folder of
    Parquet files with the columns of :func:`train.predict.predict_file`'s output.

    Rejects go to a folder beside it (``OUTPUT.rejects``, or ``options.rejects``), with the
    file each came from. Returns the counts; rows predicted + rows rejected = rows read.
    """
    options = options or PredictOptions()
    log = log or (lambda message: print(message, file=sys.stderr))
    started = time.perf_counter()
    _check_options(source, output, options, model)
    require_spark()
    loaded = model if isinstance(model, LoadedModel) else open_model(model)
    for note in loaded.notes:
        log(f"note: {note}")
    stance_model = loaded.model
    if options.explain:
        explanations.check_explainable(stance_model)
    if options.documents:
        check_document_target(options, stance_model.needs_target)
    fmt = None if options.documents else input_format(source, options.input_format)
    shares = None
    if fmt and not _remote(source):
        # Planned, and every file's columns checked, before Spark starts, as the local route does.
        shares = _plan_shares(source, fmt, options, stance_model.needs_target)
    rejects_path = options.rejects or default_rejects(output)
    with (
        scratch_folder("spark") as folder,
        session(master) as spark,
        _one_file_per_task(spark),
    ):
        staged = Path(folder) / "model"
        sha256 = modelfile.save(stance_model, staged)
        # Spark hands out files by name, and on a cluster files only, not folders: the model's two
        # files go out one by one. A name is registered once per application, so each command
        # gives its own (a second prediction in one session must not reuse the first's, whose
        # folder is gone); the fingerprint in it says which model.
        name = f"stance-model-{sha256[:16]}-{os.urandom(4).hex()}"
        for part in (modelfile.MANIFEST, modelfile.ARRAYS):
            handed = _handed_folder() / f"{name}.{part}"
            shutil.move(staged / part, handed)
            spark.sparkContext.addFile(str(handed))
        worker = _WorkerModel(name, sha256)
        if options.documents:
            read = _read_documents(spark, source, options)
            kept = read.repartition(_partitions(spark))
            predicted = kept.mapInPandas(
                functools.partial(
                    _predict_document_batches,
                    worker=worker,
                    rule=options.aggregate,
                    explain=options.explain,
                ),
                _schema(_unified_columns(stance_model.labels, options)),
            )
        else:
            predicted = _predict_tables(spark, source, fmt, shares, worker, stance_model, options)
        try:
            summary, unseen = _write(
                predicted,
                stance_model,
                options,
                output,
                rejects_path,
                documents=options.documents,
                in_order=shares is not None,
            )
        except _MisplacedCut:
            # A quote inside an unquoted field misled the plan; read each file whole instead.
            predicted = _predict_tables(spark, source, fmt, None, worker, stance_model, options)
            summary, unseen = _write(
                predicted, stance_model, options, output, rejects_path, documents=False
            )
    summary.seconds = time.perf_counter() - started
    unit = "documents" if options.documents else "rows"
    log(summary.line(unit))
    note = stance_model.unseen_target_note(unseen, unit)
    if note:
        log(note)
    return summary


def _handed_folder() -> Path:
    """Where the driver keeps the files it hands to executors: in the application's own folder,
    removed when it stops. Spark serves a handed file from where it lies, for the whole
    application, to every executor that starts a task after it was added: in a session that
    predicts twice, an executor whose first task comes in the second prediction fetches the
    first's files too, which must still be there."""
    from pyspark import SparkFiles

    folder = Path(SparkFiles.getRootDirectory()) / "stance-models"
    folder.mkdir(exist_ok=True)
    return folder


def require_spark() -> None:
    """PySpark installed and a Java runtime to start it, or an error naming what installs them."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise StanceError(
            f"--engine spark needs PySpark, which is not installed: {INSTALL}."
        ) from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise StanceError(
            "--engine spark needs a Java runtime (17 or newer) and found none: no java on PATH and "
            f"no JAVA_HOME. On Debian or Ubuntu: apt-get install {JAVA_PACKAGE}."
        )


@contextmanager
def session(master: str):
    """The active SparkSession (a test's, or the caller's), else a new one on ``master``, stopped
    at the end."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    if master.startswith("local"):
        # Python workers start from PYSPARK_PYTHON, else whichever python3 is on PATH, which need
        # not have this package; locally they are this interpreter.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("stance predict")
    # Spark's progress bars would write over the summary line on stderr.
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if master.startswith("local"):
        # Local tasks run inside the driver's JVM, whose default heap (1 GiB) a file of a
        # million sentences, read whole, outgrows.
        builder = builder.config("spark.ui.enabled", "false").config("spark.driver.memory", "4g")
    try:
        spark = builder.getOrCreate()
    except Exception as error:  # py4j and PySpark raise several types for a JVM that will not start
        raise StanceError(
            f"Spark did not start on {master}: {error}. Check the master URL and that Java 17 or "
            f"newer runs (apt-get install {JAVA_PACKAGE})."
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


@contextmanager
def _one_file_per_task(spark):
    """Each input file its own task while this command plans its reads: Spark would pack small
    files into one task up to 128 MB, so that eight files of a million rows made two tasks."""
    settings = {"spark.sql.files.maxPartitionBytes": "1", "spark.sql.files.openCostInBytes": "0"}
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def input_format(source: str, given: str | None) -> str:
    """The input's table format: given, from its extension, or from the files of a local folder."""
    if given or PurePosixPath(source.rstrip("/")).suffix.lower() in FORMATS:
        return format_of(source.rstrip("/"), given)
    path = Path(source)
    if path.is_dir():
        found = {
            FORMATS[p.suffix.lower()]
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in FORMATS
            and not any(is_skipped_name(part) for part in p.relative_to(path).parts)
        }
        if len(found) == 1:
            return found.pop()
        if not found:
            raise DataError(
                f"{source} holds no .csv, .tsv, .jsonl or .parquet files; expected a table or a "
                "folder of them (with --documents: plain-text documents)."
            )
        raise DataError(
            f"{source} holds tables of several formats ({', '.join(sorted(found))}); name the one "
            "to read with --input-format."
        )
    raise DataError(
        f"Cannot tell the format of {source} from its name; pass --input-format "
        "(csv, tsv, jsonl or parquet)."
    )


def default_rejects(output: str) -> str:
    stripped = output.rstrip("/")
    name = PurePosixPath(stripped).name
    stem = name.split(".")[0] or name
    return stripped[: len(stripped) - len(name)] + stem + ".rejects"


def _check_options(
    source: str, output: str, options: PredictOptions, model_name: str | LoadedModel
) -> None:
    if "-" in (source, output):
        raise StanceError(
            "--engine spark reads and writes paths its executors can reach; stdin and stdout "
            "cannot be. Name an input and an output folder."
        )
    if options.resume:
        raise StanceError(
            "--resume belongs to the local route; Spark retries a failed task itself. Run the "
            "command again to redo an interrupted run."
        )
    if options.jobs is not None:
        raise StanceError(
            "--jobs sets the local route's workers; with --engine spark the master sets the cores "
            "(--master local[2], or the cluster's executors)."
        )
    if options.output_format not in (None, "parquet"):
        raise StanceError(
            f"--engine spark writes a folder of Parquet files, not {options.output_format}; leave "
            "out --format, or read the folder and convert it."
        )
    suffix = PurePosixPath(output.rstrip("/")).suffix.lower()
    if suffix in FORMATS and FORMATS[suffix] != "parquet":
        raise StanceError(
            f"--engine spark writes a folder of Parquet files; {output} is named like a "
            f"{FORMATS[suffix]} file. Name a folder, such as {output.rsplit('.', 1)[0]}/."
        )
    if (
        not _remote(source)
        and not _remote(output)
        and (os.path.abspath(_local(source)) == os.path.abspath(_local(output)))
    ):
        raise StanceError(f"The output {output} is the input; name another folder.")
    if not _remote(source) and not Path(_local(source)).exists():
        # Said before Spark starts (half a minute), not in PySpark's 30-line error after it.
        raise DataError(f"{source} does not exist; name an input file or folder that does.")
    model = model_location(model_name)
    rejects = options.rejects or default_rejects(output)
    for kind, path in (("output", output), ("rejects folder", rejects)):
        if model is not None and not _remote(path) and inside_model(Path(_local(path)), model):
            raise StanceError(
                f"The {kind} {path} is the model {model} or lies inside its folder: writing it "
                "would damage the model. Name a folder outside the model's; nothing was read or "
                "written."
            )


def _local(path: str) -> str:
    """A path Spark reads from this machine's file system, without its ``file:`` scheme
    (``file:///data/x``, ``file:/data/x``)."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return path.removeprefix("file:")


# A URI's scheme: two characters at least, so that a Windows drive (C:/) is a local path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def _remote(path: str) -> bool:
    """Whether Spark reads ``path`` from a file system of its own (hdfs://, s3a://, ...), which
    this process cannot look at before Spark starts."""
    return bool(_SCHEME.match(path)) and not path.startswith("file:")


def _partitions(spark) -> int:
    # Two per core, so that a core that finishes early takes on more work.
    return max(2, 2 * spark.sparkContext.defaultParallelism)


# --------------------------------------------------------------------------- reading


class _MisplacedCut(Exception):
    """A share ended inside a quoted field (see :mod:`train.ranges`): nothing may be written."""


def _predict_tables(spark, source, fmt, shares, worker, model: StanceModel, options):
    """Predictions and rejects of every table file under ``source``: read by shares where
    ``shares`` were planned, else each file whole by one task."""
    schema = _schema(_unified_columns(model.labels, options))
    if shares is not None:
        # Each task reads its shares and predicts them in one Python worker: the texts cross
        # from Python to the JVM once, not twice.
        return _listed_shares(spark, shares).mapInPandas(
            functools.partial(
                _predict_shares,
                readings={name: reading for name, reading, _ in shares},
                worker=worker,
                options=options,
            ),
            schema,
        )
    read, files = _read_tables(spark, source, fmt, options, model.needs_target)
    # Enough files keep every core busy reading and predicting its own, in one pass;
    # fewer (one big file) are read first, and their rows spread over the cores.
    kept = read if files >= _partitions(spark) else read.repartition(_partitions(spark))
    return kept.mapInPandas(
        functools.partial(_predict_sentence_batches, worker=worker, options=options), schema
    )


def _local_table_files(source: str, fmt: str) -> list[Path]:
    """The table files of a local source as Spark lists them: the file itself, or a folder's
    files of the format at any depth, names starting with . or _ left out."""
    path = Path(_local(source))
    if path.is_file():
        return [path]
    suffixes = tuple(suffix for suffix, name in FORMATS.items() if name == fmt)
    # In the order of their names as text, the order Spark sorts the output by.
    return sorted(
        (
            file
            for file in path.rglob("*")
            if file.is_file()
            and file.name.endswith(suffixes)
            and not any(is_skipped_name(part) for part in file.relative_to(path).parts)
        ),
        key=os.path.abspath,
    )


def _plan_shares(
    source: str, fmt: str, options: PredictOptions, needs_target: bool
) -> list[tuple[str, SentenceReading, ByteRange | None]] | None:
    """Each local file's shares, with the file's name as Spark gives it (``file:/...``) and how
    it is read; a file the plan leaves whole (a header longer than a MiB) as one entry without a
    share. None for Parquet, which Spark reads whole per file. A file that is not a table the
    model can read stops the run here, before Spark starts."""
    if fmt == "parquet":
        return None
    planned, errors = [], []
    for path in _local_table_files(source, fmt):
        try:
            # Absolute: an executor reads it from a folder of its own.
            reading, chunks = sentence_chunks(
                os.path.abspath(path), replace(options, input_format=fmt), needs_target, True
            )
        except StanceError as error:
            errors.append(str(error))
            continue
        name = f"file:{os.path.abspath(path)}"
        if isinstance(chunks.chunks, Shares):
            planned += [(name, reading, share.piece) for share in chunks.chunks]
        else:
            planned.append((name, reading, None))
    if errors:
        more = len(errors) - 3
        raise DataError(
            " ".join(errors[:3]) + (f" ({more} more files like these)" if more > 0 else "")
        )
    return planned


def _listed_shares(spark, shares):
    """One row per planned share, in input order, split into runs of consecutive shares (one run
    per task): a task's output is then in input order, and so are the tasks'."""
    rows = [
        (name, *(astuple(piece) if piece else (0, -1, -1, 0, True))) for name, _, piece in shares
    ]
    parallel = min(len(rows), _partitions(spark)) or 1
    return spark.createDataFrame(
        spark.sparkContext.parallelize(rows, parallel),
        "file string, share long, start long, end long, first_line long, last boolean",
    )


_SHARE_COLUMNS = ["file", "share", "start", "end", "first_line", "last"]


def _read_share(reading: SentenceReading, file: str, index, start, end, first_line, last):
    """The rows of one listed share as the read step's frame (``_READ_COLUMNS``), or None where
    its cut was misplaced."""
    if start < 0:  # a file the plan left whole
        chunks = list(reading.batches(Table(reading.source, reading.fmt, sys.maxsize)))
    else:
        piece = ByteRange(int(index), int(start), int(end), int(first_line), bool(last))
        chunks = [Share(reading, piece).read()]
    if any(chunk.misplaced_cut for chunk in chunks):
        return None
    parts = []
    for chunk in chunks:
        parts.append(chunk.frame.assign(kind="row"))
        parts.append(chunk.rejects.assign(kind="reject"))
    return _frame(pd.concat(parts, ignore_index=True).assign(file=file), _READ_COLUMNS)


def _predict_shares(batches, readings: dict, worker: _WorkerModel, options: PredictOptions):
    columns = _unified_columns(worker.get().labels, options)
    for batch in batches:
        for file, *piece in batch[_SHARE_COLUMNS].itertuples(index=False):
            try:
                read = _read_share(readings[file], file, *piece)
            except StanceError as error:  # the file changed since the plan: said, not a trace
                yield _frame({"kind": ["error"], "file": [file], "reason": [str(error)]}, columns)
                continue
            if read is None:
                yield _frame({"kind": ["misplaced"], "file": [file]}, columns)
                continue
            yield from _predict_sentence_batches([read], worker, options)


def _read_tables(spark, source: str, fmt: str, options: PredictOptions, needs_target: bool):
    """The rows of every table file under ``source``, and how many files there are."""
    suffixes = [suffix.lstrip(".") for suffix, name in FORMATS.items() if name == fmt]
    files = _load(
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "*.{" + ",".join(suffixes) + "}"),
        source,
    ).select("path", "content")
    reader = functools.partial(
        _table_rows, fmt=fmt, options=replace(options, input_format=fmt), needs_target=needs_target
    )
    return files.mapInPandas(reader, _schema(_READ_COLUMNS)), files.rdd.getNumPartitions()


def _load(reader, source: str):
    """``reader.load(source)``, with a path that Spark cannot find said in one line."""
    from pyspark.errors import AnalysisException

    try:
        return reader.load(source)
    except AnalysisException as error:
        if getattr(error, "getCondition", lambda: None)() != "PATH_NOT_FOUND":
            raise
        raise DataError(
            f"{source} does not exist where Spark reads it; name an input file or folder that does."
        ) from None


def _table_rows(batches, fmt: str, options: PredictOptions, needs_target: bool):
    for batch in batches:
        for path, content in zip(batch["path"], batch["content"]):
            yield _table_file_rows(path, content, fmt, options, needs_target)


def _table_file_rows(
    path: str, content: bytes, fmt: str, options: PredictOptions, needs_target: bool
) -> pd.DataFrame:
    """One file's rows, read by the local route's reader from a private copy of its bytes."""
    with tempfile.TemporaryDirectory(prefix="stance-spark-read-") as folder:
        local = Path(folder) / f"input.{fmt}"
        local.write_bytes(content)
        try:
            _, chunks = sentence_chunks(str(local), options, needs_target)
            parts = []
            for chunk in chunks:
                parts.append(chunk.frame.assign(kind="row"))
                parts.append(chunk.rejects.assign(kind="reject"))
        except StanceError as error:
            message = str(error).replace(str(local), path)
            return _frame({"kind": ["error"], "file": [path], "reason": [message]}, _READ_COLUMNS)
    return _frame(pd.concat(parts, ignore_index=True).assign(file=path), _READ_COLUMNS)


def _read_documents(spark, source: str, options: PredictOptions):
    """One row per document: its place in the corpus (``line``), id and text, or why it was
    rejected. Ids and places come from :func:`train.documents.document_ids`, as locally."""
    files = _load(spark.read.format("binaryFile").option("recursiveFileLookup", "true"), source)
    relative = {}
    # Selecting the path alone, Spark lists the files without reading them.
    for (path,) in files.select("path").collect():
        name = _relative_name(path, source)
        if docs.is_document_path(name):
            relative[name] = path
    if not relative:
        raise DataError(
            f"{source} holds no .txt or .md files (names starting with . or _ are skipped); "
            "--documents expects plain-text files or a folder of them."
        )
    places = pd.DataFrame(
        [
            (relative[name], line, doc_id)
            for line, (name, doc_id) in enumerate(docs.document_ids(list(relative)), start=1)
        ],
        columns=["path", "line", "id"],
    )
    listed = spark.createDataFrame(places)
    reader = functools.partial(_document_rows, target=options.target or "")
    return listed.join(files.select("path", "content"), "path").mapInPandas(
        reader, _schema(_READ_COLUMNS)
    )


def _relative_name(listed: str, source: str) -> str:
    """A file's path under ``source`` as the local route names it (``2024/strikes.txt``), from the
    URI Spark lists it by (``file:/data/docs/2024/strikes.txt``, ``hdfs://nn:8020/docs/...``):
    the listed path's part past the source's own path. The file itself, where the source names
    one file."""
    listed_path = PurePosixPath(urlparse(listed).path)
    source_path = urlparse(source).path if "://" in source or source.startswith("file:") else ""
    root = PurePosixPath(source_path or os.path.abspath(source))
    if listed_path == root or not listed_path.is_relative_to(root):
        return listed_path.name
    return listed_path.relative_to(root).as_posix()


def _document_rows(batches, target: str):
    for batch in batches:
        rows = []
        for path, line, doc_id, content in zip(
            batch["path"], batch["line"], batch["id"], batch["content"]
        ):
            text, problem = docs.decode_document(bytes(content))
            if problem:
                rows.append(("reject", path, line, doc_id, "", None, problem))
            else:
                rows.append(("row", path, line, doc_id, text, target, None))
        yield _frame(pd.DataFrame(rows, columns=_READ_COLUMNS), _READ_COLUMNS)


# --------------------------------------------------------------------------- predicting


class _WorkerModel:
    """The model as each Python worker loads it: once, from the folder Spark handed out, checked
    against the driver's fingerprint. Picklable: it carries the folder's name, not the model."""

    _loaded: dict[str, StanceModel] = {}

    def __init__(self, name: str, sha256: str):
        self.name, self.sha256 = name, sha256

    def get(self):
        if self.sha256 not in self._loaded:
            from pyspark import SparkFiles

            # One task per core, as the local route's workers: a BLAS of many threads in each
            # would oversubscribe them.
            threadpool_limits(limits=1)
            self._loaded.clear()
            # The two files back under their own names, in a folder of this process's own (the
            # workers of one executor share SparkFiles' folder).
            folder = Path(
                tempfile.mkdtemp(prefix=f"{self.name}-", dir=SparkFiles.getRootDirectory())
            )
            for part in (modelfile.MANIFEST, modelfile.ARRAYS):
                shutil.copyfile(SparkFiles.get(f"{self.name}.{part}"), folder / part)
            self._loaded[self.sha256] = artifact.read(
                folder, self.sha256, f"the model handed to Spark ({self.name})"
            )
        return self._loaded[self.sha256]


def _predict_sentence_batches(batches, worker: _WorkerModel, options: PredictOptions):
    columns = _unified_columns(worker.get().labels, options)
    with workers.sharing(worker.get()):
        for batch in batches:
            if batch.empty:
                continue
            rows = batch[batch["kind"] == "row"].reset_index(drop=True)
            passed = batch[batch["kind"] != "row"]
            out, forwarded = predict_sentences(rows, options.keep_text, options.explain)
            out = out.assign(kind="row", file=rows["file"], line=rows["line"])
            if not options.keep_text:
                out["target"] = rows["target"]  # for the note on unseen targets; not written
            frame = pd.concat([out, passed], ignore_index=True)
            yield _with_counts(frame, len(batch), forwarded, columns)


def _predict_document_batches(batches, worker: _WorkerModel, rule: str, explain: int):
    model = worker.get()
    columns = _unified_columns(model.labels, PredictOptions(documents=True, explain=explain))
    with workers.sharing(model):
        for batch in batches:
            if batch.empty:
                continue
            rows = batch[batch["kind"] == "row"].reset_index(drop=True)
            passed = batch[batch["kind"] != "row"]
            out, rejects, _, forwarded = predict_documents(rows, rule, explain)
            files = dict(zip(rows["line"], rows["file"]))
            lines = dict(zip(rows["id"], rows["line"]))
            if len(out):
                out = out.assign(kind="row")
                # Sentence and document rows keep their document's place, for input order.
                out["line"] = out["id"].map(lines)
                out["file"] = out["line"].map(files)
            rejects = rejects.assign(kind="reject", file=rejects["line"].map(files))
            frame = pd.concat([out, rejects, passed], ignore_index=True)
            yield _with_counts(frame, len(batch), forwarded, columns)


def _with_counts(
    frame: pd.DataFrame, rows_read: int, forwarded: int, columns: list[str]
) -> pd.DataFrame:
    """The batch's counts ride on its first row, so that summing the columns counts them once."""
    frame["rows_read"] = 0
    frame["forwarded"] = 0
    if len(frame):
        frame.loc[0, "rows_read"] = rows_read
        frame.loc[0, "forwarded"] = forwarded
    return _frame(frame, columns)


# --------------------------------------------------------------------------- writing


def output_columns(labels, options: PredictOptions) -> list[str]:
    """The columns of the predictions, in the local route's order."""
    probas = [f"proba_{label}" for label in labels]
    if options.documents:
        columns = ["id", "level", "sentence_index", "start", "end", "target", "text", "label"]
        columns += probas + [f"share_{label}" for label in labels] + ["margin"]
    else:
        columns = ["id"] + (["target", "text"] if options.keep_text else []) + ["label"] + probas
    return columns + (["explanation"] if options.explain else [])


def _unified_columns(labels, options: PredictOptions) -> list[str]:
    columns = ["kind", "file", "line", "reason", "rows_read", "forwarded"]
    for name in output_columns(labels, options) + ["target", "text"]:
        if name not in columns:
            columns.append(name)
    return columns


def _write(
    predicted,
    model,
    options: PredictOptions,
    output: str,
    rejects_path: str,
    documents: bool,
    in_order: bool = False,
):
    """Count, check and write the predictions and rejects. ``in_order``: the partitions already
    hold the rows in input order, run after run (read by shares), so no sort is needed: a sort
    costs a sampling pass and a shuffle of every row."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    predicted = predicted.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        is_predicted = (F.col("kind") == "row") & (
            F.col("level") == "document" if documents else F.lit(True)
        )
        totals = predicted.agg(
            F.sum("rows_read").alias("rows_read"),
            F.sum(is_predicted.cast("long")).alias("predicted"),
            F.sum((F.col("kind") == "reject").cast("long")).alias("rejected"),
            F.sum(
                ((F.col("kind") == "row") & (F.col("level") == "sentence")).cast("long")
                if documents
                else F.lit(0)
            ).alias("sentences"),
            F.sum("forwarded").alias("forwarded"),
            F.sum((F.col("kind") == "error").cast("long")).alias("errors"),
            F.sum((F.col("kind") == "misplaced").cast("long")).alias("misplaced"),
        ).first()
        if totals["misplaced"]:
            raise _MisplacedCut
        if totals["errors"]:
            messages = [
                row["reason"]
                for row in predicted.filter(F.col("kind") == "error")
                .orderBy("file")
                .select("reason")
                .limit(3)
                .collect()
            ]
            more = totals["errors"] - len(messages)
            raise DataError(
                " ".join(messages) + (f" ({more} more files like these)" if more else "")
            )
        summary = PredictSummary(
            rows_read=int(totals["rows_read"] or 0),
            predicted=int(totals["predicted"] or 0),
            rejected=int(totals["rejected"] or 0),
            sentences=int(totals["sentences"] or 0),
            forwarded=int(totals["forwarded"] or 0),
        )
        if summary.predicted + summary.rejected != summary.rows_read:  # pragma: no cover
            raise AssertionError(f"predicted + rejected != read: {summary}")
        order = ["file", "line"]
        if documents:
            # Within a document: its sentences in order, then the document's own row.
            order += [(F.col("level") == "document").cast("int"), "sentence_index"]
        rows = predicted.filter(F.col("kind") == "row")
        (
            (rows if in_order else rows.orderBy(*order))
            .select(*output_columns(model.labels, options))
            .write.mode("overwrite")
            .parquet(output)
        )
        if summary.rejected:
            rejects = predicted.filter(F.col("kind") == "reject")
            (
                (rejects if in_order else rejects.orderBy("file", "line"))
                .select(*REJECT_COLUMNS)
                .write.mode("overwrite")
                .parquet(rejects_path)
            )
            summary.rejects_path = rejects_path
        targets = {
            row["target"]: row["count"]
            for row in predicted.filter(is_predicted).groupBy("target").count().collect()
        }
        unseen = model.unseen_targets(pd.Series(list(targets), dtype=object))
        return summary, Counter({target: targets[target] for target in unseen})
    finally:
        predicted.unpersist()


# --------------------------------------------------------------------------- schemas


def _kind_of(column: str) -> str:
    if column in _LONG:
        return "long"
    if column.startswith(_DOUBLE_PREFIXES):
        return "double"
    return "string"


def _schema(columns: list[str]):
    from pyspark.sql import types as T

    kinds = {"long": T.LongType(), "double": T.DoubleType(), "string": T.StringType()}
    return T.StructType([T.StructField(name, kinds[_kind_of(name)], True) for name in columns])


def _frame(data, columns: list[str]) -> pd.DataFrame:
    """``data`` with exactly ``columns``, typed as :func:`_schema` declares them (nulls allowed)."""
    frame = pd.DataFrame(data).reindex(columns=columns)
    for name in columns:
        kind = _kind_of(name)
        if kind == "long":
            frame[name] = frame[name].astype("Int64")
        elif kind == "double":
            frame[name] = frame[name].astype("float64")
        else:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame
