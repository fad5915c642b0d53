"""Choose the rows of an unlabeled corpus most worth a person's time to annotate.

A small model learns most from the rows it is least sure of, as long as they are not all
the same sentence. ``stance select`` scores a corpus with a model (through
:func:`train.predict.predict_file`, so documents, rejects and workers behave as in
``stance predict``), drops what is already annotated, and picks N rows by a strategy:

``margin``
    the smallest gap between the two most probable labels;
``entropy``
    the flattest probabilities;
``random``
    a seeded uniform draw, the baseline the others must beat;
``diverse`` (the default)
    coverage first, then doubt: the candidates are grouped into N clusters of similar
    wording (k-means on latent semantic vectors: word TF-IDF reduced by a truncated SVD), and
    each cluster gives, among its more typical half (the members nearest its centre), the row
    the model is least sure of. Fifty picks are fifty kinds of sentence, each a common one,
    not fifty paraphrases of the hardest one nor fifty outliers. Picking typical rows matters
    most with a model of other targets: its least certain rows alone are the ones it gets
    wrong, and a model trained on them learns to distrust it everywhere (benchmarks/RESULTS.md,
    learning curves).
``typical``
    the same clusters and typical halves, the model's doubt left out: each cluster's most
    typical row. For a first round on a target the model has never seen, whose doubts there
    are noise; on ArgQ's dev topics it took a model's first 25 rows from 70.24 macro-F1 (a
    random draw) to 74.40.

The file written is one ``stance train`` reads back: the columns the model's own training
data used for id, text, target and label (the label empty, for the annotator), then the
model's guess and probabilities as help. Every selection is a run in MLflow.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from train import schema, store, tables, tracking
from train.artifact import LoadedModel, open_model
from train.data import sha256_of
from train.duplicates import text_keys
from train.errors import DataError, StanceError
from train.predict import PredictOptions, predict_file
from train.tables import write_atomic

STRATEGIES = ("diverse", "typical", "margin", "entropy", "random")
# diverse: a larger corpus is clustered through a seeded uniform sample of this many rows, which
# keeps its shape (what "typical" is measured against) at a bounded cost.
CLUSTER_SAMPLE = 20_000
# diverse: the dimensions of the latent semantic vectors the rows are clustered on.
LSA_DIMENSIONS = 50


@dataclass(frozen=True)
class SelectOptions:
    """What ``stance select`` picks and how it reads the corpus. See ``stance select --help``."""

    n: int = 50
    strategy: str = "diverse"
    seed: int = 13
    exclude: tuple[str, ...] = ()  # annotated files: their ids and texts are not picked again
    overwrite: bool = False
    # How to read the corpus: columns, --target, --documents, workers, rejects.
    read: PredictOptions = field(default_factory=PredictOptions)


@dataclass
class SelectResult:
    output: str
    selected: pd.DataFrame
    rows_read: int
    scored: int
    rejected: int
    excluded: int
    repeated: int
    run_id: str | None = None
    rejects_path: str | None = None


# --------------------------------------------------------------------------- scores


def margin(proba: np.ndarray) -> np.ndarray:
    """The top probability minus the second: 0 where the model cannot choose between two labels."""
    top_two = np.sort(proba, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def entropy(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row's probabilities, in nats: largest when they are flat."""
    p = np.clip(proba, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def pick(texts: list[str], proba: np.ndarray, n: int, strategy: str, seed: int) -> np.ndarray:
    """Positions of the ``n`` rows a strategy picks, most worth annotating first.

    Rows are assumed distinct (the caller drops repeats); ties keep corpus order, so the
    same corpus, model, strategy and seed give the same picks on every machine.
    """
    if strategy not in STRATEGIES:
        raise StanceError(f"strategy must be one of {list(STRATEGIES)}, found {strategy!r}.")
    if n < 1:
        raise StanceError(f"N must be at least 1, found {n}.")
    count = len(texts)
    if strategy == "random":
        return np.random.default_rng(seed).permutation(count)[:n]
    if strategy == "entropy":
        return np.argsort(-entropy(proba), kind="stable")[:n]
    doubt = margin(proba) if strategy != "typical" else np.zeros(count)
    uncertain_first = np.argsort(doubt, kind="stable")
    if strategy == "margin" or count <= n:
        return uncertain_first[:n]
    pool = np.arange(count)
    if count > CLUSTER_SAMPLE:
        pool = np.sort(np.random.default_rng(seed).permutation(count)[:CLUSTER_SAMPLE])
    clusters, distance = _clusters([texts[i] for i in pool], n, seed)
    chosen = []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        typical = members[distance[members] <= np.median(distance[members])]
        # Least certain first; among equals (a model with no opinion), the most typical.
        best = np.lexsort((distance[typical], doubt[pool[typical]]))[0]
        chosen.append(pool[typical[best]])
    chosen = np.asarray(chosen, dtype=int)
    # Cluster numbers carry no meaning: list the picks least certain first, as the docstring says.
    chosen = chosen[np.lexsort((distance[np.searchsorted(pool, chosen)], doubt[chosen]))]
    if len(chosen) < n:  # fewer distinct wordings than picks: fill with the next least certain
        rest = uncertain_first[~np.isin(uncertain_first, chosen)]
        chosen = np.concatenate([chosen, rest[: n - len(chosen)]])
    return chosen[:n]


def _clusters(texts: list[str], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A cluster number per text and its distance to the cluster's centre: k-means with ``n``
    clusters on unit-length latent semantic vectors (word 1-2-gram TF-IDF through a truncated
    SVD), where sentences that share their meaning's vocabulary fall together. Raw TF-IDF is
    too sparse for k-means: it makes one crowd and many one-sentence clusters of outliers."""
    try:
        vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    except ValueError:  # no word in any text (only punctuation): one cluster, by order
        return np.zeros(len(texts), dtype=int), np.zeros(len(texts))
    dimensions = min(LSA_DIMENSIONS, vectors.shape[0] - 1, vectors.shape[1] - 1)
    if dimensions >= 2:
        vectors = normalize(TruncatedSVD(dimensions, random_state=seed).fit_transform(vectors))
    with warnings.catch_warnings():
        # Fewer distinct points than clusters: k-means says so, and pick() fills the gap.
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans = KMeans(n_clusters=min(n, vectors.shape[0]), n_init=3, random_state=seed)
        to_centres = kmeans.fit_transform(vectors)
    clusters = kmeans.labels_
    return clusters, to_centres[np.arange(len(clusters)), clusters]


# --------------------------------------------------------------------------- corpus


def corpus_sha256(source: str, documents: bool) -> str:
    """One hash of the corpus: the file's, or for a folder of documents, of every file's name and
    hash in order, so that a selection can be traced to the exact corpus it read."""
    path = Path(source)
    if path.is_file():
        return sha256_of(path)
    digest = hashlib.sha256()
    # The files the selection read: a skipped name (see tables.is_skipped_name) changes nothing.
    read = (
        p
        for p in path.rglob("*")
        if p.is_file()
        and not any(tables.is_skipped_name(part) for part in p.relative_to(path).parts)
    )
    for file in sorted(read):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_of(file)}\n".encode())
    return digest.hexdigest()


def annotated(paths: tuple[str, ...], id_column: str, text_column: str) -> tuple[set, set]:
    """The ids and text keys of files already annotated (earlier selections, training data)."""
    ids, texts = set(), set()
    for path in paths:
        columns, batch = tables.read_all(
            tables.require_path(path, "--exclude file"), tables.format_of(path)
        )
        if id_column not in columns and text_column not in columns:
            raise DataError(
                f"{path}: --exclude reads ids from column {id_column!r} and texts from column "
                f"{text_column!r}, and the file has neither; found columns {columns}. Fix: "
                "exclude a file written by `stance select` or one in the model's training format."
            )
        if id_column in columns:
            ids.update(str(v).strip() for v in batch.column(id_column) if v)
        if text_column in columns:
            texts.update(text_keys(v for v in batch.column(text_column) if v))
    return ids, texts


def _scored_rows(
    loaded: LoadedModel, corpus: str, output: str, options: SelectOptions, log
) -> tuple:
    """Every corpus row (every sentence, for documents) with the model's label and probabilities;
    the prediction summary; whether the corpus gave ids of its own."""
    read = options.read
    has_ids = read.documents
    if not read.documents and corpus != "-":
        with tables.Table(corpus, tables.format_of(corpus, read.input_format)) as table:
            columns = table.columns
        has_ids = read.columns.column("id") in columns
        target_column = read.columns.column("target")
        if read.target is None and target_column not in columns:
            raise DataError(
                f"{corpus}: no column {target_column!r}; found columns {columns}. Selected rows "
                "need a target to be trained on. Fix: name the target column with "
                '--target-column, or give every row one target with --target "...".'
            )
    if read.documents and not read.target:
        raise DataError(
            'Documents have no target column, and selected sentences need one: pass --target "...".'
        )
    with tempfile.TemporaryDirectory(prefix="stance-select-") as folder:
        scored = Path(folder) / "scored.parquet"
        # Rejected rows go beside the user's file, not into the scratch folder with the scores.
        rejects = read.rejects or str(
            Path(output).with_name(Path(output).name.split(".")[0] + ".rejects.csv")
        )
        read_options = replace(
            read, keep_text=True, explain=0, output_format="parquet", rejects=rejects
        )
        summary = predict_file(loaded, corpus, str(scored), read_options, log=log)
        rows = pd.read_parquet(scored)
    if read.documents:
        rows = rows[rows["level"] == "sentence"].reset_index(drop=True)
        rows["id"] = [f"{doc}#s{i + 1}" for doc, i in zip(rows["id"], rows["sentence_index"])]
    return rows, summary, has_ids


# --------------------------------------------------------------------------- command


def select(
    model: str, corpus: str, output: str, options: SelectOptions = SelectOptions(), log=None
) -> SelectResult:
    """Write the ``options.n`` corpus rows most worth annotating to ``output``, and log the
    selection as a run. See the module docstring for the strategies."""
    log = log or (lambda message: print(message, file=sys.stderr))
    if options.strategy not in STRATEGIES:
        raise StanceError(
            f"--strategy must be one of {list(STRATEGIES)}, found {options.strategy!r}."
        )
    if options.n < 1:
        raise StanceError(f"-n is the number of rows to select, 1 or more; found {options.n}.")
    if corpus == "-" or output == "-":
        raise StanceError(
            "stance select reads a named corpus (its hash is logged with the selection) and writes "
            "a named file (the one you annotate); stdin and stdout are not accepted."
        )
    fmt = tables.format_of(output)
    if Path(output).exists() and not options.overwrite:
        raise StanceError(
            f"{output} exists, and may hold annotations already made; nothing was written. Name "
            "another file with -o (and pass this one to --exclude), or pass --overwrite."
        )
    loaded = open_model(model)  # its notes are said where predict_file scores the corpus
    data_config = loaded.model.config.get("data", {})
    named = {"id": "id", "text": "text", "target": "target", "label": "label"}
    named |= dict(data_config.get("columns", {}))
    weight_column = named.get("weight", "weight") if data_config.get("use_weights") else None
    ids_done, texts_done = annotated(options.exclude, named["id"], named["text"])

    rows, summary, has_ids = _scored_rows(loaded, corpus, output, options, log)
    if not has_ids:  # line numbers alone would collide with the next corpus's
        rows["id"] = [f"{Path(corpus).stem}:{line}" for line in rows["id"]]
    keys = pd.Series(text_keys(rows["text"]), index=rows.index)
    already = rows["id"].astype(str).isin(ids_done) | keys.isin(texts_done)
    repeated = ~already & (keys + "\x1f" + rows["target"].astype(str)).duplicated()
    candidates = rows[~already & ~repeated].reset_index(drop=True)
    labels = loaded.model.labels
    proba = candidates[[f"proba_{label}" for label in labels]].to_numpy(dtype=float)
    chosen = (
        pick(candidates["text"].tolist(), proba, options.n, options.strategy, options.seed)
        if len(candidates)
        else np.array([], dtype=int)
    )
    picked = candidates.iloc[chosen]
    out = pd.DataFrame(
        {
            named["id"]: picked["id"].astype(str).to_numpy(),
            named["text"]: picked["text"].to_numpy(),
            named["target"]: picked["target"].to_numpy(),
            named["label"]: "",
        }
    )
    if weight_column:
        out[weight_column] = ""  # blank: weight 1 when trained
    out["guess"] = picked["label"].to_numpy()
    for label in labels:
        out[f"proba_{label}"] = picked[f"proba_{label}"].to_numpy()
    out["margin"] = margin(proba[chosen]) if len(chosen) else []
    Path(output).absolute().parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, Path(output), fmt)

    result = SelectResult(
        output,
        out,
        rows_read=summary.rows_read,
        scored=len(rows),
        rejected=summary.rejected,
        excluded=int(already.sum()),
        repeated=int(repeated.sum()),
        rejects_path=summary.rejects_path,
    )
    if len(out) < options.n:
        log(
            f"note: {len(candidates):,} rows were left to choose from, fewer than -n {options.n}; "
            "all of them are selected."
        )
    result.run_id = _log_selection(model, loaded, corpus, options, result, fmt)
    return result


def _log_selection(
    model: str, loaded: LoadedModel, corpus: str, options: SelectOptions, result, fmt: str
) -> str:
    experiment = loaded.model.config.get("name") or "selection"
    # The full run id (a prefix may match another run later) or the file's absolute path.
    model_reference = (
        store.full_run_uri(model)
        if model.startswith(("runs:/", "models:/"))
        else str(Path(model).resolve())
    )
    params = {
        "selection.strategy": options.strategy,
        "selection.n": options.n,
        "selection.seed": options.seed,
        "selection.documents": options.read.documents,
        "selection.corpus": str(Path(corpus).resolve()),
        "selection.corpus_sha256": corpus_sha256(corpus, options.read.documents),
        "selection.model": model_reference,
        "selection.model_sha256": loaded.file_sha256(),
        "selection.excluded_files": ", ".join(options.exclude) or "none",
    }
    metrics = {
        "rows_read": result.rows_read,
        "rows_scored": result.scored,
        "rows_rejected": result.rejected,
        "rows_already_annotated": result.excluded,
        "rows_repeated": result.repeated,
        "rows_selected": len(result.selected),
    }
    if len(result.selected):
        metrics["mean_margin_selected"] = float(result.selected["margin"].mean())
    tags = {schema.SELECTED_WITH: model_reference}
    with tracking.command_run(experiment, {}, tags) as run_id:
        tracking.log_selection(params, metrics, result.selected, f"selection/rows.{fmt}", fmt)
    return run_id
