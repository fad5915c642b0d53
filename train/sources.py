"""Where a dataset's files are, and whether they hold the columns its experiment reads.

Standard library only, with :mod:`train.tables`: the checks here run before a command imports
pandas or scikit-learn (see :mod:`train.preflight`), and :mod:`train.data` uses the same ones
when it loads the rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from train import tables
from train.config import DataConfig
from train.errors import DataError

# The files a folder named in data.path contributes, by data.format.
TABLE_SUFFIXES = {
    "csv": (".csv",),
    "tsv": (".tsv", ".tab"),
    "jsonl": (".jsonl", ".ndjson"),
    "parquet": (".parquet",),
}


def data_root(cli_value: str | None = None) -> Path:
    """The folder experiment paths are relative to: ``--data-dir``, else ``$STANCE_DATA_DIR``, else
    ``./data``.
    """
    return Path(cli_value or os.environ.get("STANCE_DATA_DIR") or "data")


def table_files(config: DataConfig, root: Path) -> list[Path]:
    """Every file ``data.path`` names, in order: a file as given, a folder as its files of the
    experiment's format, sorted by name (so a folder of annotation rounds reads the same way on
    every machine)."""
    files: list[Path] = []
    for given in config.paths:
        path = root / given
        if path.is_dir():
            suffixes = TABLE_SUFFIXES[config.format]
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not tables.is_skipped_name(p.name)
            )
            if not found:
                raise DataError(
                    f"{path}: the folder holds no {config.format} files (names ending in "
                    f"{' or '.join(suffixes)}, not starting with . or _). Fix: put the "
                    "annotated files there, or name the files themselves in data.path."
                )
            files += found
        else:
            files.append(path)
    seen: set[Path] = set()
    for path in files:
        key = path.resolve()
        if key in seen:
            raise DataError(
                f"{path} is named twice by data.path {list(config.paths)}; each file is read once."
            )
        seen.add(key)
    return files


def column_mapping(config: DataConfig) -> dict[str, str]:
    """Each record field and the file column it is read from."""
    # weight and split are experiment-file fields only, so they are not command-line ColumnNames.
    named = tables.ColumnNames.from_mapping(config.columns)
    mapping = {name: named.column(name) for name in tables.COLUMN_OPTIONS}
    mapping.update({name: config.columns.get(name, name) for name in ("weight", "split")})
    return mapping


def check_columns(config: DataConfig, path: Path, found: list[str]) -> None:
    """Refuse a file whose columns ``found`` lack one the experiment reads."""
    mapping = column_mapping(config)
    required = ["text", "label"] + ([] if config.target else ["target"])
    for name in required:
        if mapping[name] not in found:
            raise DataError(
                f"{path}: missing column {mapping[name]!r} (the {name} column). Found columns "
                f"{found}.{tables.separator_hint(found, config.format)} "
                "Fix: rename the column in the file or map it in the experiment, e.g. "
                f'[data.columns] {name} = "<your column>"'
                + (
                    '; or give every row one target with data.target = "...".'
                    if name == "target"
                    else "."
                )
            )
    for name in ("id", "weight", "split"):
        if name in config.columns and mapping[name] not in found:
            raise DataError(
                f"{path}: data.columns.{name} names column {mapping[name]!r}, which is not in the "
                f"file. Found columns {found}."
            )
