"""Target-aware features: is the target mentioned, and how related are target and text."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.preprocessing import normalize

from features.base import TARGET, TEXT, DenseFeatures, text_column, unique_inverse
from features.text import Tokenizer

# Upper edges of the similarity bins. A linear model cannot threshold a single
# cosine value, but one indicator per bin lets it learn "unrelated below 0.1".
SIMILARITY_BINS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


class TargetRelatedness(DenseFeatures):
    """How much the text is about its target.

    Features per row: whether any content word of the target occurs in the
    text, the share of target content words that occur, the Jaccard overlap of
    content words, the TF-IDF cosine similarity of target and text (the vector
    space is fitted on the training texts and targets), and one indicator per
    similarity bin.

    Parameters
    ----------
    stemmer : {None, "porter", "snowball"}, default="porter"
        Stemming lets "strikes" in a target match "strike" in the text.
    bins : bool, default=True
        Add the one-hot similarity bins.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"text": ["The strikes were reckless", "Lunch was good"],
    ...                   "target": ["missile strikes", "missile strikes"]})
    >>> TargetRelatedness().fit_transform(X).toarray()[:, 0].tolist()
    [1.0, 0.0]
    """

    def __init__(self, stemmer="porter", bins=True):
        self.stemmer = stemmer
        self.bins = bins

    def _prepare(self, X):
        self.tokenizer_ = Tokenizer(kind="regex", stemmer=self.stemmer)
        texts = np.unique(text_column(X, TEXT, "TargetRelatedness"))
        targets = np.unique(text_column(X, TARGET, "TargetRelatedness"))
        self.vectorizer_ = TfidfVectorizer(
            analyzer=self.tokenizer_, sublinear_tf=True, dtype=np.float64
        ).fit(np.concatenate([texts, targets]))

    def _content(self, text: str) -> frozenset:
        return frozenset(t for t in self.tokenizer_(text) if t.isalnum() and t not in ENGLISH_STOP_WORDS)

    def _compute(self, X):
        texts, text_index = unique_inverse(text_column(X, TEXT, "TargetRelatedness"))
        targets, target_index = unique_inverse(text_column(X, TARGET, "TargetRelatedness"))
        # Work per distinct text and per distinct target, then combine per row:
        # FNC-1 has 50k pairs but fewer than 2k bodies and 2k headlines.
        text_vectors = normalize(self.vectorizer_.transform(texts))[text_index]
        target_vectors = normalize(self.vectorizer_.transform(targets))[target_index]
        cosine = np.asarray(target_vectors.multiply(text_vectors).sum(axis=1)).ravel()
        text_words = [self._content(t) for t in texts]
        target_words = [self._content(t) for t in targets]
        values = np.zeros((len(cosine), len(self._names())))
        for row, (i, j) in enumerate(zip(text_index, target_index)):
            wanted, found = target_words[j], text_words[i]
            shared = len(wanted & found)
            union = len(wanted | found)
            values[row, :3] = (float(shared > 0), shared / len(wanted) if wanted else 0.0, shared / union if union else 0.0)
        values[:, 3] = np.clip(cosine, 0.0, 1.0)
        if self.bins:
            bin_index = np.searchsorted(SIMILARITY_BINS, values[:, 3], side="right")
            values[np.arange(len(values)), 4 + bin_index] = 1.0
        return values

    def _names(self):
        names = ["mentioned", "target_coverage", "jaccard", "cosine"]
        if self.bins:
            edges = (0.0, *SIMILARITY_BINS, 1.0)
            names += [f"cosine_{lo:g}_{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
        return names
