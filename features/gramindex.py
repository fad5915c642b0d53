"""A fitted n-gram vocabulary as integer keys, so that a batch is counted by numpy.

Counting n-grams the scikit-learn way builds one string per n-gram ("no war") and looks each up in
the vocabulary, one Python operation per n-gram. Here each *token* is looked up once, an n-gram is
the integer ``t1 * T**(n-1) + ... + tn`` over token ids, and a hash table of the vocabulary's keys
(pandas') answers all of a batch's n-grams in one call (unigrams, whose keys are small, in a
plain table). The counts are the same, bit for bit
(``tests/features/test_gramindex.py`` compares the two on every tokenizer setting).
"""

from __future__ import annotations

import weakref
from itertools import chain, repeat

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

# Keys must stay below 2**63; a vocabulary whose keys would not is counted the string way.
_KEY_LIMIT = 2**62
_UNIGRAM_TABLE_LIMIT = 4_000_000


class Unindexable(ValueError):
    """The vocabulary cannot be keyed (tokens with spaces, or too many tokens for int64 keys)."""


class GramIndex:
    """The n-grams of a vocabulary as sorted integer keys.

    Parameters
    ----------
    vocabulary : dict of str to int
        A fitted ``CountVectorizer.vocabulary_`` of space-joined tokens, each n-gram optionally
        prefixed with ``"cue|"`` (:class:`features.ngrams.WordNgrams` with cue crosses).
    ngram_range : tuple of int
    cues : tuple of str or None
        The cue words n-grams are crossed with, or None for plain n-grams.

    Raises
    ------
    Unindexable
        When an n-gram does not split into ``ngram_range`` tokens, or keys would overflow.

    Examples
    --------
    >>> index = GramIndex({"no": 0, "war": 1, "no war": 2}, (1, 2), None)
    >>> index.count([["no", "war"], ["war"]], None).toarray().tolist()
    [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]
    """

    def __init__(self, vocabulary: dict, ngram_range, cues: tuple[str, ...] | None):
        self.low, self.high = (int(n) for n in ngram_range)
        self.n_columns = len(vocabulary)
        cue_ids = None if cues is None else {cue: i for i, cue in enumerate(cues)}
        # Split by Arrow's kernels, not per n-gram in Python: a 122,721-entry vocabulary took
        # 0.8 s to index, once per process that predicts.
        grams = pa.array(list(vocabulary), pa.string())
        columns = np.fromiter(vocabulary.values(), np.int64, count=len(vocabulary))
        cue_of = np.zeros(len(vocabulary), np.int64)
        if cue_ids is not None:
            halves = pc.list_slice(  # "cue|n-gram" at its first bar; None where there is none
                pc.split_pattern(grams, "|", max_splits=1), 0, 2, return_fixed_size_list=True
            )
            cue_of = pc.index_in(
                pc.list_element(halves, 0), value_set=pa.array(list(cue_ids), pa.string())
            )
            grams_after_cue = pc.list_element(halves, 1)
            _refuse_first(
                pc.or_(pc.is_null(cue_of), pc.is_null(grams_after_cue)), grams, "has no known cue"
            )
            cue_of = cue_of.to_numpy().astype(np.int64)
            grams = grams_after_cue
        parts = pc.split_pattern(grams, " ")
        lengths = pc.list_value_length(parts).to_numpy()
        tokens = pc.list_flatten(parts)
        # Two spaces in a row, or one at an end, leave an empty token.
        empty = pc.equal(pc.binary_length(tokens), 0).to_numpy(zero_copy_only=False)
        has_empty = np.zeros(len(parts), bool)
        has_empty[pc.list_parent_indices(parts).to_numpy()[empty]] = True
        _refuse_first(
            (lengths < self.low) | (lengths > self.high) | has_empty,
            grams,
            f"does not split into {ngram_range} tokens",
        )
        # Ids in order of first appearance, as a dict filled n-gram by n-gram would give them.
        encoded = pc.dictionary_encode(tokens)
        token_strings = encoded.dictionary.to_pylist()
        self.base = max(len(token_strings), 1)
        if max(len(cues or ()), 1) * self.base**self.high >= _KEY_LIMIT:
            raise Unindexable(f"{len(token_strings):,} tokens are too many for int64 keys")
        self.token_ids = dict(zip(token_strings, range(len(token_strings))))
        self.token_values = encoded.dictionary  # the tokens in id order, for Arrow lookups
        self._key_tables: dict[int, pd.Index] = {}
        self.cues = cue_ids
        ids = encoded.indices.to_numpy().astype(np.int64)
        starts = parts.offsets.to_numpy()[:-1].astype(np.int64)
        self.keys: dict[int, np.ndarray] = {}
        self.columns: dict[int, np.ndarray] = {}
        for n in range(self.low, self.high + 1):
            chosen = np.flatnonzero(lengths == n)
            keys = cue_of[chosen]
            for offset in range(n):
                keys = keys * self.base + ids[starts[chosen] + offset]
            order = np.argsort(keys, kind="stable")
            self.keys[n], self.columns[n] = keys[order], columns[chosen][order]
        # Unigram keys are small (cue x token): a plain table answers them without hashing,
        # where it stays under 32 MB.
        self.unigram_columns = None
        if self.low == 1 and max(len(cues or ()), 1) * self.base <= _UNIGRAM_TABLE_LIMIT:
            self.unigram_columns = np.full(max(len(cues or ()), 1) * self.base, -1, np.int64)
            self.unigram_columns[self.keys[1]] = self.columns[1]

    def count(self, token_lists: list[list[str]], row_cues: list[list[int]] | None):
        """Rows of n-gram counts (CSR, canonical) for tokenized rows.

        ``row_cues`` holds, per row, the ids of the cues its target carries (in ``cues`` order);
        a row with none gets no n-grams, as the string analyzer emits none.
        """
        n_rows = len(token_lists)
        lengths = np.fromiter(map(len, token_lists), np.int64, count=n_rows)
        flat = list(chain.from_iterable(token_lists))
        ids = np.fromiter(map(self.token_ids.get, flat, repeat(-1)), np.int64, count=len(flat))
        row_of = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
        return self._count_ids(ids, row_of, n_rows, row_cues)

    def count_flat(
        self, tokens, token_rows: np.ndarray, n_rows: int, row_cues: list[list[int]] | None
    ):
        """:meth:`count` of a batch whose tokens are one Arrow string array, each row's tokens
        together and in order, ``token_rows`` giving each token's row (rows may come in any
        order; see :meth:`features.text.Tokenizer.flat`). Each token is looked up in Arrow's
        hash table instead of by a Python call."""
        ids = pc.fill_null(pc.index_in(tokens, value_set=self.token_values), -1)
        ids = ids.to_numpy().astype(np.int64, copy=False)
        return self._count_ids(ids, token_rows, n_rows, row_cues)

    def _count_ids(self, ids: np.ndarray, row_of: np.ndarray, n_rows: int, row_cues):
        cues = None if row_cues is None else _RowCues(row_cues)
        rows, columns = [], []
        for n in range(self.low, self.high + 1):
            windows = len(ids) - n + 1
            if windows <= 0:
                continue
            window_row = row_of[:windows]
            # An n-gram lies within one row: each row's tokens are together.
            usable = row_of[n - 1 :] == window_row
            key = np.zeros(windows, dtype=np.int64)
            for offset in range(n):
                part = ids[offset : offset + windows]
                usable &= part >= 0
                key = key * self.base + part
            chosen = np.flatnonzero(usable)
            key, window_row = key[chosen], window_row[chosen]
            if cues is not None:
                key, window_row = cues.cross(key, window_row, self.base**n)
            column = self._lookup(n, key)
            known = column >= 0
            rows.append(window_row[known])
            columns.append(column[known])
        empty = np.zeros(0, np.int64)
        return count_matrix(
            np.concatenate(rows) if rows else empty,
            np.concatenate(columns) if columns else empty,
            (n_rows, self.n_columns),
        )

    def _lookup(self, n: int, key: np.ndarray) -> np.ndarray:
        if n == 1 and self.unigram_columns is not None:
            return self.unigram_columns[key]
        if not len(self.keys[n]):
            return np.full(len(key), -1, dtype=np.int64)
        if n not in self._key_tables:
            # A hash lookup: 4x a binary search of the sorted keys (110,955 bigrams, 1M queries).
            self._key_tables[n] = pd.Index(self.keys[n])
        at = self._key_tables[n].get_indexer(key)
        return np.where(at >= 0, self.columns[n][at], -1)


class CharGramIndex:
    """A fitted ``char_wb`` vocabulary as integer keys over character ids, so that a batch's
    character n-grams are counted by numpy.

    scikit-learn's ``char_wb`` analyzer pads each whitespace-separated word with a space on both
    sides and slices it in Python, one string per n-gram. Here the batch's padded words are one
    array of code points; an n-gram is the integer ``c1 * B**(n-1) + ... + cn`` over character
    ids, and each length of n-gram is one vectorised lookup. Known characters get ids 1 to
    ``B - 2`` and every other character ``B - 1``, which no vocabulary n-gram holds: no digit is
    0, so n-grams of different lengths never share a key, and one with an unknown character
    never matches. The counts equal the analyzer's, bit for bit
    (``tests/features/test_gramindex.py``).

    Parameters
    ----------
    vocabulary : dict of str to int
        A fitted ``CountVectorizer(analyzer="char_wb").vocabulary_``.
    ngram_range : tuple of int

    Raises
    ------
    Unindexable
        When keys of the longest n-grams would overflow int64 (too many distinct characters).

    Examples
    --------
    >>> index = CharGramIndex({" n": 0, "no": 1, "o ": 2}, (2, 2))
    >>> index.count(["no", "on no"]).toarray().tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, vocabulary: dict, ngram_range):
        self.low, self.high = (int(n) for n in ngram_range)
        self.n_columns = len(vocabulary)
        points, lengths = _code_points(list(vocabulary))
        known = np.unique(points)
        self.base = len(known) + 2
        if self.base**self.high >= _KEY_LIMIT:
            raise Unindexable(f"{len(known):,} characters are too many for int64 keys")
        # Code point -> id; the last entry, for any code point past the known ones, is unknown.
        top = int(known[-1]) + 1 if len(known) else 0
        self.char_ids = np.full(top + 1, self.base - 1, dtype=np.int64)
        self.char_ids[known] = np.arange(1, len(known) + 1)
        ids = self.char_ids[points]
        starts = np.cumsum(lengths) - lengths
        columns = np.fromiter(vocabulary.values(), np.int64, count=len(vocabulary))
        self.keys: dict[int, pd.Index] = {}
        self.columns: dict[int, np.ndarray] = {}
        for length in np.unique(lengths):
            chosen = np.flatnonzero(lengths == length)
            self.keys[int(length)] = pd.Index(self._keys(ids, starts[chosen], int(length)))
            self.columns[int(length)] = columns[chosen]

    def _keys(self, ids: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
        key = np.zeros(len(starts), dtype=np.int64)
        for offset in range(n):
            key = key * self.base + ids[starts + offset]
        return key

    def count(self, documents: list[str], lowercase: bool = True) -> sp.csr_matrix:
        """Rows of n-gram counts (CSR, canonical) for ``documents``, as ``char_wb`` counts them:
        each word (``str.split``) padded with a space on both sides; for each n, the word's
        windows of n characters where it is longer than n, else the whole padded word, once."""
        if lowercase:
            documents = [document.lower() for document in documents]
        words = [document.split() for document in documents]
        # "  ".join puts the padding of two neighbouring words side by side: " w1  w2 ".
        padded = "".join([f" {'  '.join(w)} " if w else "" for w in words])
        points, _ = _code_points([padded])
        ids = self.char_ids[np.minimum(points, len(self.char_ids) - 1)]
        # Words hold no whitespace, so the spaces are the paddings: a word's first, its last.
        spaces = np.flatnonzero(points == 32)
        word_start, word_end = spaces[0::2], spaces[1::2] + 1
        width = word_end - word_start
        word_row = np.repeat(
            np.arange(len(documents), dtype=np.int64),
            np.fromiter(map(len, words), np.int64, count=len(words)),
        )
        rows, columns = [], []

        def look_up(starts, row_of, n):
            if n not in self.keys or not len(starts):
                return
            at = self.keys[n].get_indexer(self._keys(ids, starts, n))
            found = at >= 0
            rows.append(row_of[found])
            columns.append(self.columns[n][at[found]])

        for n in range(self.low, self.high + 1):
            longer = np.flatnonzero(width > n)
            windows = width[longer] - n + 1
            first = np.repeat(word_start[longer] - (np.cumsum(windows) - windows), windows)
            look_up(first + np.arange(int(windows.sum())), np.repeat(word_row[longer], windows), n)
        # A word no longer than the longest n gives itself, once (at the first n it fits in).
        for n in range(1, self.high + 1):
            whole = np.flatnonzero(width == n)
            look_up(word_start[whole], word_row[whole], n)
        empty = np.zeros(0, np.int64)
        return count_matrix(
            np.concatenate(rows) if rows else empty,
            np.concatenate(columns) if columns else empty,
            (len(documents), self.n_columns),
        )


def _code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The code points of ``texts`` end to end, and each text's length in code points. A lone
    surrogate (half a character, which a reader may hand on) is kept as its own code point."""
    joined = "".join(texts).encode("utf-32-le", "surrogatepass")
    lengths = np.fromiter(map(len, texts), np.int64, count=len(texts))
    return np.frombuffer(joined, dtype=np.uint32).astype(np.int64), lengths


def _refuse_first(bad, grams, problem: str) -> None:
    """Raise for the first n-gram flagged in ``bad`` (an Arrow or numpy boolean array)."""
    if isinstance(bad, pa.Array):
        bad = bad.to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(bad)
    if len(rows):
        raise Unindexable(f"n-gram {grams[int(rows[0])].as_py()!r} {problem}")


class _RowCues:
    """The cue ids of each row's target, flattened once per batch for every n."""

    def __init__(self, row_cues: list[list[int]]):
        self.per_row = np.fromiter(map(len, row_cues), np.int64, count=len(row_cues))
        self.flat = np.fromiter(
            chain.from_iterable(row_cues), np.int64, count=int(self.per_row.sum())
        )
        self.start = np.cumsum(self.per_row) - self.per_row

    def cross(self, key: np.ndarray, window_row: np.ndarray, cue_place: int):
        """Each n-gram once per cue of its row's target, the cue in the key's top digit (worth
        ``cue_place``)."""
        times = self.per_row[window_row]
        source = np.repeat(np.arange(len(key)), times)
        # The position of each copy among its n-gram's copies: 0, 1, ... per n-gram.
        first_copy = np.repeat(np.cumsum(times) - times, times)
        nth = np.arange(len(source)) - first_copy
        rows = window_row[source]
        cue = self.flat[self.start[rows] + nth]
        return cue * cue_place + key[source], rows


def count_matrix(rows: np.ndarray, columns: np.ndarray, shape) -> sp.csr_matrix:
    """One count per (row, column) pair, summed, as canonical CSR (columns sorted in each row)."""
    counts = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=shape)
    counts.sum_duplicates()
    return counts


_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def gram_index(owner, vocabulary: dict, ngram_range, cues) -> GramIndex | None:
    """The owner's index, built on first use and kept while the owner lives (never pickled, so
    model files are unchanged); None where the vocabulary cannot be keyed."""
    return _kept(owner, GramIndex, vocabulary, ngram_range, cues)


def char_gram_index(owner, vocabulary: dict, ngram_range) -> CharGramIndex | None:
    """:func:`gram_index` for a ``char_wb`` vocabulary."""
    return _kept(owner, CharGramIndex, vocabulary, ngram_range)


def _kept(owner, kind, *arguments):
    try:
        return _INDEXES[owner]
    except KeyError:
        pass
    try:
        index = kind(*arguments)
    except Unindexable:
        index = None
    _INDEXES[owner] = index
    return index
