"""Load annotated sentences, validate every row, and split them.

A record has ``text``, ``target`` and ``label``, and optionally ``id``,
``weight`` and ``split``. Every loader returns the same frame, with the file
and line each row came from, so a problem can always be traced to its source.

Bad rows are never dropped silently. With ``data.on_bad_rows = "error"`` (the
default) loading stops at the first problems, naming file, line and reason.
With ``"quarantine"`` they go to a rejects frame with a reason per row, and
rows kept + rows rejected = rows read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from train import tables
from train.config import FORMATS, TABLE_FORMATS, DataConfig, SplitConfig, labels_for
from train.duplicates import copy_groups
from train.errors import DataError
from train.sources import check_columns, column_mapping, table_files

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {
    "train": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
}
META = ("source", "line")
COLUMNS = ("id", "text", "target", "label", "weight", "split", "group", *META)

SEMEVAL_TARGETS = {
    # Folder name -> the target as SemEval-2016 Task 6 worded it; target-aware
    # features compare these words with the tweet.
    "abortion": "Legalization of Abortion",
    "atheism": "Atheism",
    "climate": "Climate Change is a Real Concern",
    "feminist": "Feminist Movement",
    "hillary": "Hillary Clinton",
}


@dataclass
class SourceFile:
    path: str
    sha256: str
    rows_read: int


@dataclass
class LoadedData:
    """Rows that passed validation, rows that did not, and the files they came from."""

    rows: pd.DataFrame
    rejects: pd.DataFrame
    files: list[SourceFile] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def digest(self) -> str:
        """One hash over every file read, for comparing runs at a glance."""
        combined = hashlib.sha256("".join(f.sha256 for f in self.files).encode())
        return combined.hexdigest()[:16]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: Path, fmt: str) -> tuple[pd.DataFrame, dict[int, str], list[str]]:
    """A whole table as a frame of strings plus "line", the rows' read problems, and the file's
    columns.
    """
    found, batch = tables.read_all(path, fmt)
    frame = pd.DataFrame(batch.rows, columns=batch.columns, dtype=object)
    frame["line"] = batch.lines
    frame.attrs["raw"] = batch.raw  # lines that could not be parsed into fields, by position
    return frame, batch.problems, found


# --------------------------------------------------------------------------- loaders


def _records(
    frame: pd.DataFrame, problems: dict[int, str], source: str, mapping: dict[str, str]
) -> pd.DataFrame:
    """Rename the file's columns to record fields and attach source, line and reader problems."""
    out = pd.DataFrame(index=range(len(frame)))
    for field_name, column in mapping.items():
        out[field_name] = frame[column].to_numpy(dtype=object) if column in frame.columns else None
    out["source"] = source
    out["line"] = frame["line"].to_numpy()
    out["problem"] = [problems.get(i) for i in range(len(frame))]
    return out


def load_table(config: DataConfig, root: Path) -> tuple[pd.DataFrame, list[SourceFile]]:
    """CSV, TSV, JSONL or Parquet files with the columns named in ``data.columns``: one file, or
    several (a list, or a folder) read as one dataset, every row keeping its own file and line."""
    parts, files = [], []
    for path in table_files(config, root):
        records, source = _load_table_file(config, path)
        parts.append(records)
        files.append(source)
    return pd.concat(parts, ignore_index=True), files


def _load_table_file(config: DataConfig, path: Path) -> tuple[pd.DataFrame, SourceFile]:
    frame, problems, found = read_table(path, config.format)
    mapping = column_mapping(config)
    check_columns(config, path, found)
    if not config.use_weights:
        mapping.pop("weight")
    records = _records(frame, problems, str(path), mapping)
    # A line that could not be parsed is rejected; its text in the rejects is the line itself.
    for position, raw in frame.attrs.get("raw", {}).items():
        records.at[position, "text"] = raw
    if config.target:
        records["target"] = config.target
    return records, SourceFile(str(path), sha256_of(path), len(records))


def _read_lines(path: Path) -> list[str]:
    raw = tables.require_path(path, "Data file").read_bytes()
    return raw.decode("utf-8", errors="surrogateescape").splitlines()


def load_semeval2016(config: DataConfig, root: Path) -> tuple[pd.DataFrame, list[SourceFile]]:
    """SemEval-2016 Task 6 in the TweetEval packaging:
    ``TARGET/{train,val,test}_{text,labels}.txt``.
    """
    folder = tables.require_path(root / config.paths[0], "SemEval-2016 folder", folder=True)
    mapping_file = folder / "mapping.txt"
    codes = {"0": "NONE", "1": "AGAINST", "2": "FAVOR"}
    if mapping_file.exists():
        codes = {
            code: name.strip().upper()
            for code, name in (
                line.split("\t") for line in _read_lines(mapping_file) if line.strip()
            )
        }
    target_names = {**SEMEVAL_TARGETS, **config.target_names}
    parts, files = [], []
    targets = (p for p in folder.iterdir() if p.is_dir() and not tables.is_skipped_name(p.name))
    for target_dir in sorted(targets):  # not .ipynb_checkpoints and the like
        for split in ("train", "val", "test"):
            text_path, label_path = (
                target_dir / f"{split}_text.txt",
                target_dir / f"{split}_labels.txt",
            )
            texts, labels = _read_lines(text_path), _read_lines(label_path)
            if len(texts) != len(labels):
                raise DataError(
                    f"{text_path} has {len(texts)} lines but {label_path} has {len(labels)}; "
                    "each tweet needs exactly one label on the same line number."
                )
            part = pd.DataFrame(
                {
                    "id": [f"{target_dir.name}-{split}-{i}" for i in range(1, len(texts) + 1)],
                    "text": [tables.visible(t).strip() for t in texts],
                    "target": target_names.get(target_dir.name, target_dir.name),
                    "label": [codes.get(code.strip(), code.strip() or None) for code in labels],
                    "split": SPLIT_ALIASES[split],
                    "source": str(text_path),
                    "line": np.arange(1, len(texts) + 1),
                    "problem": [
                        tables.UNDECODABLE if tables.has_surrogates(t) else None for t in texts
                    ],
                }
            )
            parts.append(part)
            files += [SourceFile(str(p), sha256_of(p), len(texts)) for p in (text_path, label_path)]
    if not parts:
        raise DataError(
            f"{folder} has no target folders; expected e.g. {folder}/abortion/train_text.txt."
        )
    # Each tweet is one row read, though it spans a text file and a label file.
    for f in files:
        if f.path.endswith("_labels.txt"):
            f.rows_read = 0
    return pd.concat(parts, ignore_index=True), files


def load_fnc1(config: DataConfig, root: Path) -> tuple[pd.DataFrame, list[SourceFile]]:
    """FNC-1: the headline is the target, the body (joined by Body ID) is the text."""
    folder = tables.require_path(root / config.paths[0], "FNC-1 folder", folder=True)
    parts, files = [], []
    for prefix, split in (("train", "train"), ("competition_test", "test")):
        stances_path, bodies_path = (
            folder / f"{prefix}_stances.csv",
            folder / f"{prefix}_bodies.csv",
        )
        bodies, body_problems, _ = read_table(bodies_path, "csv")
        stances, problems, _ = read_table(stances_path, "csv")
        for path, frame, needed in (
            (bodies_path, bodies, ("Body ID", "articleBody")),
            (stances_path, stances, ("Headline", "Body ID", "Stance")),
        ):
            missing = [c for c in needed if c not in frame.columns]
            if missing:
                raise DataError(
                    f"{path}: missing columns {missing}; found "
                    f"{[c for c in frame.columns if c != 'line']}."
                )
        if body_problems:
            position, reason = next(iter(body_problems.items()))
            raise DataError(f"{bodies_path}, line {bodies['line'][position]}: {reason}.")
        body_text = dict(zip(bodies["Body ID"].str.strip(), bodies["articleBody"]))
        records = _records(
            stances, problems, str(stances_path), {"target": "Headline", "label": "Stance"}
        )
        body_ids = stances["Body ID"].fillna("").str.strip()
        records["text"] = [body_text.get(b) for b in body_ids]
        for i, body_id in enumerate(body_ids):
            if records.at[i, "problem"] is None and body_id not in body_text:
                records.at[i, "problem"] = f"Body ID {body_id!r} not found in {bodies_path.name}"
        records["id"] = [f"{split}-{line}" for line in records["line"]]
        records["group"] = body_ids.to_numpy()
        records["split"] = split
        parts.append(records)
        files += [
            SourceFile(str(stances_path), sha256_of(stances_path), len(records)),
            SourceFile(str(bodies_path), sha256_of(bodies_path), 0),
        ]
    return pd.concat(parts, ignore_index=True), files


def load_argq(config: DataConfig, root: Path) -> tuple[pd.DataFrame, list[SourceFile]]:
    """IBM ArgQ 30k: topic is the target, ``stance_WA`` (1 / -1) gives PRO / CON, ``set`` the
    split.
    """
    path = root / config.paths[0]
    frame, problems, _ = read_table(path, "csv")
    needed = ("argument", "topic", "set", "stance_WA", "stance_WA_conf")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing columns {missing}; this loader expects IBM's "
            "arg_quality_rank_30k.csv."
        )
    mapping = {"text": "argument", "target": "topic", "label": "stance_WA", "split": "set"}
    if config.use_weights:
        mapping["weight"] = "stance_WA_conf"
    records = _records(frame, problems, str(path), mapping)
    records["label"] = records["label"].map(
        lambda v: {"1": "PRO", "-1": "CON"}.get(str(v).strip(), v)
    )
    records["id"] = [f"argq-{line}" for line in records["line"]]
    return records, [SourceFile(str(path), sha256_of(path), len(records))]


PUBLIC_DATASET_LOADERS = {
    "semeval2016": load_semeval2016,
    "fnc1": load_fnc1,
    "argq": load_argq,
}
# Every format config.py accepts, and only those: a name there without a loader here fails on
# import, not in the middle of a training.
LOADERS = {
    name: load_table if name in TABLE_FORMATS else PUBLIC_DATASET_LOADERS[name] for name in FORMATS
}


# --------------------------------------------------------------------------- validation


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


def _row_problem(row, labels: set[str]) -> str | None:
    if row.problem:
        return row.problem
    if _blank(row.text):
        return "empty text"
    if marker := tables.missing_marker(row.text):
        return f"missing text: the cell reads {marker!r}, which is taken as a missing value"
    if _blank(row.target):
        return "missing target"
    if marker := tables.missing_marker(row.target):
        return f"missing target: the cell reads {marker!r}, which is taken as a missing value"
    if _blank(row.label):
        return "missing label"
    if row.label not in labels:
        same_but_case = [label for label in labels if label.casefold() == str(row.label).casefold()]
        hint = (
            f' (labels are case-sensitive; map it in [data.label_map]: "{row.label}" = '
            f'"{same_but_case[0]}")'
            if same_but_case
            else ""
        )
        return f"unknown label {row.label!r}; expected one of {sorted(labels)}{hint}"
    weight = getattr(row, "weight", None)
    if weight is not None and not _blank(weight):
        try:
            value = float(weight)
        except ValueError:
            return f"weight {weight!r} is not a number"
        if not value >= 0:
            return f"weight {weight!r} must be a number >= 0"
    split = getattr(row, "split", None)
    if not _blank(split) and str(split).strip().lower() not in SPLIT_ALIASES:
        return f"unknown split {split!r}; expected one of train, valid (or dev, val), test"
    return None


def validate(
    records: pd.DataFrame, labels: tuple[str, ...], label_map: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split records into (kept, rejected), each rejected row with a reason."""
    records = records.copy()
    for column in ("id", "weight", "split"):
        if column not in records.columns:
            records[column] = None
    if label_map:
        records["label"] = [
            label_map.get(str(v).strip(), v) if not _blank(v) else v for v in records["label"]
        ]
    records["label"] = [str(v).strip() if not _blank(v) else v for v in records["label"]]
    records["target"] = [str(v).strip() if not _blank(v) else v for v in records["target"]]
    label_set = set(labels)
    reasons = [_row_problem(row, label_set) for row in records.itertuples(index=False)]
    records["reason"] = reasons

    # Duplicate ids: the first occurrence stays, later ones are rejected.
    ok = records["reason"].isna()
    has_id = ok & ~records["id"].map(_blank)
    first_line = {}
    for index in records.index[has_id]:
        key = str(records.at[index, "id"]).strip()
        if key in first_line:
            records.at[index, "reason"] = (
                f"duplicate id {key!r} (first seen at line {first_line[key]})"
            )
        else:
            first_line[key] = records.at[index, "line"]

    # The same text and target with different labels: no label can be trusted,
    # so every row of the group is rejected, each naming the others. A dataset's
    # own validation and test splits are kept as published, so that scores stay
    # comparable with other systems; only rows used for training are checked.
    split_names = records["split"].map(
        lambda s: None if _blank(s) else SPLIT_ALIASES.get(str(s).strip().lower())
    )
    ok = (
        records["reason"].isna() & split_names.isin(["train"])
        | records["reason"].isna() & split_names.isna()
    )
    # Built row by row: pandas' .str methods fail on a column that holds no string at all.
    spaced = pd.Series(
        ["" if _blank(v) else " ".join(str(v).split()) for v in records["text"]],
        index=records.index,
        dtype=object,
    )
    key = records["target"].astype(str) + "\x1f" + spaced
    candidates = records[ok].assign(_key=key[ok])
    conflicting = candidates.groupby("_key")["label"].transform("nunique") > 1
    for _, group in candidates[conflicting].groupby("_key", sort=False):
        summary = ", ".join(
            f"{label} (line {line})" for label, line in zip(group["label"], group["line"])
        )
        for index in group.index:
            records.at[index, "reason"] = (
                f"conflicting labels for the same text and target: {summary}"
            )

    rejected = records["reason"].notna()
    kept = records[~rejected].drop(columns=["reason", "problem"]).reset_index(drop=True)
    kept["weight"] = pd.to_numeric(kept["weight"], errors="coerce").fillna(1.0).astype(float)
    kept["split"] = [
        SPLIT_ALIASES.get(str(s).strip().lower()) if not _blank(s) else None for s in kept["split"]
    ]
    kept["text"] = kept["text"].astype(str)
    kept["id"] = [
        str(i) if not _blank(i) else f"{Path(s).name}:{line}"
        for i, s, line in zip(kept["id"], kept["source"], kept["line"])
    ]
    rejects = records[rejected].drop(columns=["problem"]).reset_index(drop=True)
    rejects = rejects[
        ["source", "line", "reason"]
        + [c for c in rejects.columns if c not in ("source", "line", "reason")]
    ]
    return kept[list(COLUMNS)], rejects


TRAINING_BAD_ROWS_FIX = (
    'Fix the rows, or set data.on_bad_rows = "quarantine" (or --set data.on_bad_rows=quarantine) '
    "to train without them and write them to a rejects file."
)


def load_dataset(
    config: DataConfig, root: Path, bad_rows_fix: str = TRAINING_BAD_ROWS_FIX
) -> LoadedData:
    """Load and validate the dataset an experiment names. See the module docstring for the bad-row
    policy.

    ``bad_rows_fix`` ends the error that stops on bad rows: how the caller's user quarantines
    them."""
    records, files = LOADERS[config.format](config, root)
    if config.target_names:  # before anything (groups, splits, conflicts) is keyed on the target
        names = dict(config.target_names)
        records["target"] = [
            names.get(str(v).strip(), v) if not _blank(v) else v for v in records["target"]
        ]
    if (
        "group" not in records
    ):  # a loader names groups only where they are not the targets (FNC-1's bodies)
        records["group"] = records["target"]
    kept, rejects = validate(records, labels_for(config), dict(config.label_map))
    data = LoadedData(kept, rejects, files)
    if (
        len(kept) + len(rejects) != data.rows_read
    ):  # pragma: no cover - an invariant, not an input error
        raise AssertionError(
            f"rows kept {len(kept)} + rejected {len(rejects)} != rows read {data.rows_read}"
        )
    # One line, as every error: the first rows and their reasons, then how many more.
    shown = rejects.head(5)
    lines = "; ".join(f"{r.source}, line {r.line}: {r.reason}" for r in shown.itertuples())
    more = f"; and {len(rejects) - len(shown)} more" if len(rejects) > len(shown) else ""
    if len(rejects) and config.on_bad_rows == "error":
        raise DataError(
            f"{len(rejects)} of {data.rows_read} rows failed validation: {lines}{more}. "
            f"{bad_rows_fix}"
        )
    if kept.empty:
        why = (
            f": all {len(rejects)} rows failed validation: {lines}{more}."
            if len(rejects)
            else " (the files hold no rows)."
        )
        raise DataError(f"No valid rows in {', '.join(f.path for f in files)}{why}")
    return data


def near_duplicate_targets(targets: pd.Series) -> list[str]:
    """Targets that differ only in case or spacing are kept apart, but are often one target
    spelt two ways; each such group gets a warning with the line that merges it."""
    counts = targets.value_counts()
    key = pd.Series(counts.index, index=counts.index).map(
        lambda t: " ".join(str(t).casefold().split())
    )
    warnings = []
    for _, group in counts.groupby(key.to_numpy(), sort=True):
        if len(group) < 2:
            continue
        ranked = group.sort_values(ascending=False, kind="stable")
        main = ranked.index[0]
        spelled = ", ".join(f"{t!r} ({n} rows)" for t, n in ranked.items())
        merge = " ".join(
            f"{json.dumps(t, ensure_ascii=False)} = {json.dumps(main, ensure_ascii=False)}"
            for t in ranked.index[1:]
        )
        warnings.append(
            f"targets that differ only in case or spacing are kept apart: {spelled}. "
            f"If they are one target, add to the experiment: [data.target_names] {merge}"
        )
    return warnings


def check_training_labels(labels: tuple[str, ...], found: pd.Series) -> None:
    """Every label the experiment declares must occur in the training rows: a model cannot
    output a class it never saw, and its scores for that class would be missing."""
    counts = found.value_counts()
    seen = ", ".join(f"{label} {counts.get(label, 0)}" for label in labels)
    absent = [label for label in labels if label not in counts.index]
    if len(labels) - len(absent) < 2:
        raise DataError(
            f"The training rows hold fewer than two labels ({seen}); a classifier needs rows of "
            "two at least."
        )
    if absent:
        raise DataError(
            f"Label {absent[0]!r} has no training rows ({seen}), so no model can learn it. "
            "Annotate rows for it, "
            f"leave it out of data.labels, or merge it into another label with [data.label_map]."
        )


# --------------------------------------------------------------------------- splits


def _holdout(
    frame: pd.DataFrame, size: float, method: str, seed: int, what: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if method == "stratified":
        first, codes = copy_groups(frame["text"])
        labels = frame["label"].iloc[first]
        stratify = labels if labels.value_counts().min() >= 2 else None
        try:
            _, held_texts = train_test_split(
                np.arange(len(first)), test_size=size, random_state=seed, stratify=stratify
            )
        except ValueError as error:  # too few texts for a share of them to be a whole row
            raise DataError(
                f"Cannot hold out a {what} split of {size:.0%} from {len(frame)} rows "
                f"({len(first)} distinct texts): {str(error).rstrip('.')}. Annotate more rows, "
                "or give the rows a split column (train, valid, test)."
            ) from None
        held = np.isin(codes, held_texts)
        return frame[~held], frame[held]
    else:
        groups = frame["target" if method == "by_target" else "group"].astype(str)
        if groups.nunique() < 2:
            raise DataError(
                f"split.method = {method!r} needs at least 2 distinct "
                f"{'targets' if method == 'by_target' else 'groups'} to hold out a {what} split; "
                f"found {groups.nunique()}."
            )
        splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
        keep, hold = next(splitter.split(frame, groups=groups))
        keep, hold = frame.index[keep], frame.index[hold]
    return frame.loc[np.sort(keep)], frame.loc[np.sort(hold)]


def split_dataset(rows: pd.DataFrame, config: SplitConfig, seed: int) -> dict[str, pd.DataFrame]:
    """Train, validation and test frames.

    The dataset's own splits are used where it has them; a missing test or
    validation split is carved from train, seeded, with ``split.method``:
    stratified by label, ``by_target`` (whole targets held out, for
    cross-target evaluation) or ``by_group`` (e.g. FNC-1 bodies).
    """
    given = rows["split"].notna()
    if given.any() and not given.all():
        missing = rows.loc[~given].iloc[0]
        raise DataError(
            f"{missing.source}, line {missing.line}: no split, while other rows have one. Give "
            "every row a split or none."
        )
    if given.all():
        parts = {name: rows[rows["split"] == name] for name in SPLITS}
        train = parts["train"]
        if train.empty:
            raise DataError("The dataset's split column names no 'train' rows.")
    else:
        train, parts = rows, {"valid": rows.iloc[0:0], "test": rows.iloc[0:0]}
    if parts["test"].empty:
        train, parts["test"] = _holdout(train, config.test_size, config.method, seed, "test")
    if parts["valid"].empty:
        size = config.valid_size / (1 - (config.test_size if not given.all() else 0))
        # Another stream than the test holdout's; the modulo keeps the largest seed in numpy's
        # range.
        train, parts["valid"] = _holdout(
            train, min(size, 0.5), config.method, (seed + 1) % 2**32, "validation"
        )
    return {
        "train": train.reset_index(drop=True),
        "valid": parts["valid"].reset_index(drop=True),
        "test": parts["test"].reset_index(drop=True),
    }
