"""Copies of one text: which rows say the same thing, so that splits and folds keep them together.

Two rows are copies when their texts have the same *key*: Unicode compatibility forms folded
(NFKC), case folded, URLs and @mentions removed, punctuation, symbols (emoji among them) and
control characters removed, runs of white space made one space. "Iran's strikes." and
"IRAN'S STRIKES !! 🚀 https://t.co/x" are copies.

Two rows are *near* copies when their keys share at least :data:`NEAR_SIMILARITY` of their
character 5-grams (Jaccard similarity of the two sets): a word changed or added in a long
sentence. Candidates are found by MinHash over :data:`HASHES` hash functions and
locality-sensitive hashing, then checked on their exact sets. Copies
and near copies form one group; splits and folds are drawn over groups.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NEAR_SIMILARITY = 0.8
SHINGLE = 5
HASHES = 32
BANDS = 16  # of HASHES // BANDS hashes each: a pair at 0.8 becomes a candidate with p > 0.9999
LARGEST_BUCKET = 512

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
# Variation selectors are nonspacing marks (Mn), not symbols, but only ever dress an emoji.
_VARIATION = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_DROPPED = ("P", "S", "C")


class _Blanks(dict):
    """str.translate's table: the characters of the categories in _DROPPED become a space,
    others stay. Filled as characters are met, so each is looked up once per process: a third
    of the time of calling unicodedata.category for every character (ArgQ's 30k arguments),
    and 5 times faster than one regex class of every such code point."""

    def __missing__(self, point: int) -> str:
        char = chr(point)
        blank = unicodedata.category(char)[0] in _DROPPED or _VARIATION.match(char)
        self[point] = " " if blank else char
        return self[point]


_BLANKS = _Blanks()


def text_key(text: str) -> str:
    """The key under which copies of ``text`` meet (see the module's docstring). A text of
    nothing but punctuation or emoji keeps its own characters, so that it is not a copy of
    every other such text."""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    stripped = _MENTION.sub(" ", _URL.sub(" ", folded))
    kept = stripped.translate(_BLANKS).split()
    return " ".join(kept) if kept else " ".join(folded.split())


def text_keys(texts) -> list[str]:
    return [text_key(text) for text in texts]


def _minhashes(keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(len(keys), HASHES) MinHash signatures of each key's character 5-grams, with the
    5-grams themselves (hashed, in key order) and where each key's start.

    Every key's code points go into one array, so that hashing is a few numpy passes rather
    than a loop per text; windows that cross from one key into the next are dropped.
    """
    padded = [key.ljust(SHINGLE, "\0") + "\0" for key in keys]
    joined = "".join(padded).encode("utf-32-le", "surrogatepass")  # a lone surrogate is a point
    points = np.frombuffer(joined, dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter((len(key) for key in padded), dtype=np.int64, count=len(padded))
    ends = np.cumsum(lengths)
    windows = np.lib.stride_tricks.sliding_window_view(points, SHINGLE)
    # A 5-gram as a number: a polynomial in its code points, wrapping at 2**64 (deterministic,
    # unlike Python's salted hash()).
    powers = np.uint64(1_000_003) ** np.arange(SHINGLE, dtype=np.uint64)
    with np.errstate(over="ignore"):
        shingles = (windows * powers).sum(axis=1, dtype=np.uint64)
    # The windows that start in a key and end before its trailing separator.
    owner = np.repeat(np.arange(len(keys)), lengths)[: len(shingles)]
    valid = np.arange(len(shingles)) + SHINGLE <= (ends - 1)[owner]
    shingles, owner = shingles[valid], owner[valid]
    first = np.searchsorted(owner, np.arange(len(keys)))
    rng = np.random.default_rng(20161)  # fixed: signatures must not depend on a run's seed
    multipliers = rng.integers(1, 2**63, size=HASHES, dtype=np.uint64) | np.uint64(1)
    offsets = rng.integers(0, 2**63, size=HASHES, dtype=np.uint64)
    signatures = np.empty((len(keys), HASHES), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for h in range(HASHES):
            mixed = (shingles * multipliers[h] + offsets[h]) >> np.uint64(16)
            signatures[:, h] = np.minimum.reduceat(mixed, first)
    return signatures, shingles, first


def _near_pairs(
    signatures: np.ndarray, shingles: np.ndarray, first: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of keys whose 5-gram sets have a Jaccard similarity of NEAR_SIMILARITY or more.

    Candidates are keys that share a band of their signatures, every pair of a bucket (a bucket
    of more than LARGEST_BUCKET keys is a common opening, not a copy, and is passed over; true
    copies share other bands too). Candidates whose signatures agree on less than
    NEAR_SIMILARITY - 0.1 of their hashes are dropped; the rest are checked on their exact
    5-gram sets, so the estimate's noise joins nothing. Every step depends on the keys alone,
    not on their order.
    """
    rows = HASHES // BANDS
    candidates = []
    for band in range(BANDS):
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        _, bucket, sizes = np.unique(
            block.view(np.dtype((np.void, block.dtype.itemsize * rows))),
            return_inverse=True,
            return_counts=True,
        )
        bucket = bucket.ravel()  # numpy 2 shapes the inverse like the (n, 1) view
        shared = np.flatnonzero((sizes >= 2) & (sizes <= LARGEST_BUCKET))
        if not len(shared):
            continue
        members = np.flatnonzero(np.isin(bucket, shared))
        members = members[np.argsort(bucket[members], kind="stable")]
        size_of = sizes[bucket[members]]
        for size in np.unique(size_of):  # buckets of one size as rows of a matrix: no loop
            groups = members[size_of == size].reshape(-1, size)
            a, b = np.triu_indices(size, 1)
            left, right = groups[:, a].ravel(), groups[:, b].ravel()
            agree = (signatures[left] == signatures[right]).mean(axis=1)
            keep = agree >= NEAR_SIMILARITY - 0.1
            candidates.append(left[keep] * len(signatures) + right[keep])
    if not candidates:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    codes = np.unique(np.concatenate(candidates))
    pairs = np.stack([codes // len(signatures), codes % len(signatures)], axis=1)
    ends = np.r_[first[1:], len(shingles)]
    sets: dict[int, np.ndarray] = {}

    def grams(key: int) -> np.ndarray:
        if key not in sets:
            sets[key] = np.unique(shingles[first[key] : ends[key]])
        return sets[key]

    close = [
        len(np.intersect1d(grams(a), grams(b), assume_unique=True))
        >= NEAR_SIMILARITY * len(np.union1d(grams(a), grams(b)))
        for a, b in pairs
    ]
    pairs = pairs[np.asarray(close, dtype=bool)] if len(pairs) else pairs
    return pairs[:, 0], pairs[:, 1]


def copy_groups(texts, near: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Each group's first position, and for every row the number of its group in that list
    (0, 1, ... in order of first appearance). A group is a text with its copies and, if
    ``near``, its near copies.

    Splits and folds are drawn over groups, and every row follows its group: a sentence
    annotated twice must not be trained on and tested on at once, which scores memory as skill.
    """
    keys = text_keys(texts)
    codes, distinct = pd.factorize(pd.Series(keys, dtype=object))
    if near and len(distinct) > 1:
        a, b = _near_pairs(*_minhashes(list(distinct)))
        if len(a):
            graph = coo_matrix(
                (np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(distinct), len(distinct))
            )
            _, component = connected_components(graph, directed=False)
            # Renumbered in order of first appearance, as without near copies.
            codes, _ = pd.factorize(component[codes])
    first = np.flatnonzero(~pd.Series(codes).duplicated().to_numpy())
    return first, codes


def repeated_texts(splits: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Counts for the run's metrics.

    ``repeated_text_rows``: rows whose text (by key) and target an earlier row has. A text
    under several targets is no repeat (FNC-1 pairs each article body with many headlines).
    ``near_copy_rows``: rows in a group with another row whose key differs (a near copy).
    ``test_rows_with_a_train_text`` and ``valid_rows_with_a_train_text``: rows that share a
    group with a training row, under any target. A dataset's own splits may share texts; splits
    carved here never do.
    """
    names = [name for name in splits if len(splits[name])]
    if not names:
        return {"repeated_text_rows": 0, "near_copy_rows": 0}
    every = pd.concat([splits[name] for name in names], ignore_index=True)
    split_of = np.repeat(names, [len(splits[name]) for name in names])
    keys = pd.Series(text_keys(every["text"]), dtype=object)
    _, groups = copy_groups(every["text"])
    pairs = keys + "\x1f" + every["target"].astype(str).to_numpy()
    keys_per_group = keys.groupby(groups).transform("nunique")
    counts = {
        "repeated_text_rows": int(pairs.duplicated().sum()),
        "near_copy_rows": int((keys_per_group > 1).sum()),
    }
    if "train" in splits:  # cross-validation reads train alone
        in_train = set(groups[split_of == "train"])
        for name in ("valid", "test"):
            if name in splits:
                counts[f"{name}_rows_with_a_train_text"] = int(
                    sum(group in in_train for group in groups[split_of == name])
                )
    return counts
