"""What a command checks before it imports pandas, scikit-learn or MLflow.

Those imports take seconds; a path that does not exist or a header without the text column
takes milliseconds to find. Each check here is one the command would make later anyway, with
the same message, so a mistake costs no more than it must. Nothing here imports more than the
standard library, :mod:`train.config`, :mod:`train.tables` and :mod:`train.sources`.
"""

from __future__ import annotations

from pathlib import Path

from train import tables
from train.config import Config
from train.errors import DataError, ModelError
from train.sources import check_columns, data_root, table_files


def _store_uri(uri: str) -> bool:
    """As train.artifact.is_store_uri, which cannot be imported here (it imports scikit-learn)."""
    return uri.startswith(("runs:/", "models:/"))


# The public datasets' loaders and the folder each reads (train.data).
_DATASET_FOLDERS = {"semeval2016": "SemEval-2016 folder", "fnc1": "FNC-1 folder"}


def training_data(experiment: str | Path, overrides: list[str], data_dir: str | None) -> None:
    """The experiment's data files exist, and each CSV or TSV file's header names the columns
    the experiment reads. (A JSON lines file names its columns line by line and is checked when
    it is read; a Parquet file's schema needs pyarrow.)"""
    data = Config.data_from_toml(experiment, overrides)
    root = data_root(data_dir)
    if data.format in _DATASET_FOLDERS:
        tables.require_path(root / data.paths[0], _DATASET_FOLDERS[data.format], folder=True)
        return
    if data.format not in ("csv", "tsv", "jsonl", "parquet"):
        return  # a loader with its own layout (ArgQ): checked when it reads
    for path in table_files(data, root):
        tables.require_path(path, "Data file")
        # A pipe (/dev/stdin, <(...)) can be read once only: the loader's turn.
        if data.format in ("csv", "tsv") and path.is_file():
            with tables.Table(path, data.format) as table:
                check_columns(data, path, table.columns)


def prediction_input(
    model: str,
    source: str,
    columns: tables.ColumnNames,
    input_format: str | None,
    documents: bool,
) -> None:
    """The model folder and the input exist, and a CSV or TSV input has the columns named on
    the command line: the text column, and the target and id columns where they were given (a
    default target column is checked once the model says whether it reads one)."""
    if not _store_uri(model) and not Path(model).exists():
        raise ModelError(
            f"No model at {model}; expected a model folder, runs:/RUN_ID/model or "
            "models:/NAME@ALIAS."
        )
    if source == "-" or "://" in source:
        return
    path = Path(source)
    if documents:
        if not path.exists():
            raise DataError(
                f"{path} does not exist; --documents expects a plain-text file, a folder of "
                "them, or - for stdin."
            )
        return
    if not path.exists():
        raise DataError(f"{source} does not exist; name an input file or folder that does.")
    try:
        fmt = tables.format_of(source, input_format)
    except DataError:
        return  # said with the options that could fix it, by the command itself
    if fmt not in ("csv", "tsv") or not path.is_file():  # a folder, or a pipe read once only
        return
    named = [columns.column("text")] + [c for c in (columns.target, columns.id) if c]
    with tables.Table(path, fmt) as table:
        missing = [c for c in named if c not in table.columns]
    if missing:
        fixes = {
            columns.column("text"): "Name the text column with --text-column.",
            columns.target: "The model reads the target: name its column with --target-column, "
            'or give every row one target with --target "...".',
            columns.id: "Name the id column with --id-column, or leave the option out to number "
            "rows by their line.",
        }
        names = " or ".join(repr(c) for c in missing)
        hint = tables.separator_hint(table.columns, fmt)
        raise DataError(
            f"{source}: no column {names}; found columns {table.columns}.{hint} "
            + " ".join(dict.fromkeys(fixes[c] for c in missing))
        )
