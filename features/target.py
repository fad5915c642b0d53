"""Target-aware features: how related target and text are, and features copied per target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from features.base import TARGET, TEXT, DenseFeatures, RawTextInput, text_column, unique_inverse
from features.gramindex import gram_index
from features.state import Child, Int, Strings
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

    fitted_state = {
        **DenseFeatures.fitted_state,
        "tokenizer_": Child(("Tokenizer",)),
        "vectorizer_": Child(("TfidfVectorizer",)),
    }

    def __init__(self, stemmer="porter", bins=True):
        self.stemmer = stemmer
        self.bins = bins

    def reads_target(self) -> bool:
        return True

    def _prepare(self, X):
        self.tokenizer_ = Tokenizer(kind="regex", stemmer=self.stemmer)
        texts = np.unique(text_column(X, TEXT, "TargetRelatedness"))
        targets = np.unique(text_column(X, TARGET, "TargetRelatedness"))
        self.vectorizer_ = TfidfVectorizer(
            analyzer=self.tokenizer_, sublinear_tf=True, dtype=np.float64
        ).fit(np.concatenate([texts, targets]))

    @staticmethod
    def _content(tokens: list[str]) -> frozenset:
        # Distinct tokens first: a body repeats most of its words.
        return frozenset(filter(str.isalnum, set(tokens) - ENGLISH_STOP_WORDS))

    def _tfidf(self, texts, token_lists: list[list[str]]) -> sp.csr_matrix:
        """What ``vectorizer_.transform(texts)`` gives, from the texts' tokens: each text is
        tokenized once for both the cosine and the word overlaps (stemming long FNC-1 bodies was
        most of this step's time). Counted by the word steps' index, then the transformer's
        operations in its order, so the same bits."""
        index = gram_index(self.vectorizer_, self.vectorizer_.vocabulary_, (1, 1), None)
        if index is None:  # pragma: no cover - regex tokens hold no spaces: always indexable
            return self.vectorizer_.transform(texts)
        counts = index.count(token_lists, None)
        np.log(counts.data, counts.data)
        counts.data += 1.0
        counts.data *= self.vectorizer_.idf_[counts.indices]
        return normalize(counts)

    def _compute(self, X):
        texts, text_index = unique_inverse(text_column(X, TEXT, "TargetRelatedness"))
        targets, target_index = unique_inverse(text_column(X, TARGET, "TargetRelatedness"))
        # Work per distinct text and per distinct target, then combine per row:
        # FNC-1 has 50k pairs but fewer than 2k bodies and 2k headlines.
        text_tokens = self.tokenizer_.many(texts)
        target_tokens = self.tokenizer_.many(targets)
        text_vectors = normalize(self._tfidf(texts, text_tokens))[text_index]
        target_vectors = normalize(self._tfidf(targets, target_tokens))[target_index]
        cosine = np.asarray(target_vectors.multiply(text_vectors).sum(axis=1)).ravel()
        text_words = [self._content(tokens) for tokens in text_tokens]
        target_words = [self._content(tokens) for tokens in target_tokens]
        # Per row only the intersection, which Python's sets walk from the smaller side (a
        # headline's few words); sizes and ratios by numpy, to the same bits as float division.
        shared = np.fromiter(
            (len(target_words[j] & text_words[i]) for i, j in zip(text_index, target_index)),
            np.int64,
            count=len(cosine),
        )
        wanted = np.fromiter(map(len, target_words), np.int64, count=len(targets))[target_index]
        found = np.fromiter(map(len, text_words), np.int64, count=len(texts))[text_index]
        union = wanted + found - shared
        values = np.zeros((len(cosine), len(self._names())))
        values[:, 0] = shared > 0
        np.divide(shared, wanted, out=values[:, 1], where=wanted > 0)
        np.divide(shared, union, out=values[:, 2], where=union > 0)
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


class TargetSpecificCopies(RawTextInput, TransformerMixin, BaseEstimator):
    """Every feature twice over: once shared by all targets, once for the row's own target.

    The "frustratingly easy" domain adaptation of Daumé III (2007): a linear
    model on these columns learns weights that hold for every target and, on
    top, weights for one target only. Each target's model borrows strength
    from the others' rows, which helps when each target has a few hundred
    examples; a per-target model would see only its own. A target unseen in
    training gets the shared columns alone.

    Parameters
    ----------
    features : transformer
        The feature union whose output is copied; fitted on all rows.
    shared_weight : float, default=1.0
        Scales the shared copy. Above 1 the model leans on what targets have
        in common, below 1 on what is particular to each.
    max_targets : int, default=50
        Columns, and a linear model's weights, grow with the number of
        targets: this suits a handful of targets (SemEval-2016 has five),
        not FNC-1's thousands of headlines. More training targets than this
        is an error rather than a model of hundreds of megabytes.

    Examples
    --------
    >>> import pandas as pd
    >>> from features import WordNgrams
    >>> X = pd.DataFrame({"text": ["ban it", "keep it"], "target": ["guns", "taxes"]})
    >>> copies = TargetSpecificCopies(WordNgrams(ngram_range=(1, 1))).fit(X)
    >>> copies.get_feature_names_out().tolist()
    ['ban', 'it', 'keep', 'guns|ban', 'guns|it', 'guns|keep', 'taxes|ban', 'taxes|it', 'taxes|keep']
    """

    fitted_state = {"targets_": Strings("array"), "features_": Child(), "n_shared_": Int()}
    part_params = {"features": Child()}

    def __init__(self, features=None, shared_weight=1.0, max_targets=50):
        self.features = features
        self.shared_weight = shared_weight
        self.max_targets = max_targets

    def fit(self, X, y=None):
        if self.features is None:
            raise ValueError(
                "TargetSpecificCopies needs features: the transformer (e.g. a FeatureUnion) whose "
                "columns it copies."
            )
        if isinstance(self.shared_weight, bool) or not float(self.shared_weight) > 0:
            raise ValueError(
                "TargetSpecificCopies shared_weight must be a positive number, found "
                f"{self.shared_weight!r}."
            )
        targets = sorted(set(text_column(X, TARGET, "TargetSpecificCopies")))
        if len(targets) > self.max_targets:
            raise ValueError(
                "TargetSpecificCopies copies every feature once per target and found "
                f"{len(targets)} targets "
                f'(max_targets={self.max_targets}). Use model.strategy = "joint" or "per_target" '
                "for data with many targets."
            )
        self.targets_ = np.asarray(targets, dtype=object)
        self.features_ = clone(self.features).fit(X, y)
        self.n_shared_ = len(self.features_.get_feature_names_out())
        return self

    def transform(self, X):
        check_is_fitted(self, "features_")
        targets = text_column(X, TARGET, "TargetSpecificCopies")
        shared = sp.csr_matrix(self.features_.transform(X))
        if shared.shape[1] != self.n_shared_:
            # The block offsets below assume this width; a model file that disagrees with its
            # own features is refused here rather than building out-of-range columns.
            raise ValueError(
                f"TargetSpecificCopies expects {self.n_shared_} shared features, its features "
                f"gave {shared.shape[1]}"
            )
        shared.sum_duplicates()  # canonical: each row's columns sorted, so sums run in one order
        # Target k's block starts after the shared block and k earlier target blocks; an unseen
        # target (code -1) gets no block. Each row holds its shared entries, then the same
        # entries moved into its target's block: two CSR blocks side by side, which scipy joins
        # in C (a scatter of every entry cost more than the features themselves).
        code = pd.Index(self.targets_).get_indexer(targets)
        counts = np.diff(shared.indptr)
        offset = np.repeat(self.n_shared_ * code, counts)
        kept = code >= 0
        own_indptr = np.zeros(len(code) + 1, dtype=np.int64)
        np.cumsum(counts * kept, out=own_indptr[1:])
        if kept.all():
            own_data, own_indices = shared.data, shared.indices + offset
        else:
            entries = np.repeat(kept, counts)
            own_data, own_indices = shared.data[entries], shared.indices[entries] + offset[entries]
        own = sp.csr_matrix(
            (own_data, own_indices, own_indptr),
            shape=(len(code), self.n_shared_ * len(self.targets_)),
        )
        weighted = sp.csr_matrix(
            (shared.data * float(self.shared_weight), shared.indices, shared.indptr),
            shape=shared.shape,
        )
        return sp.hstack([weighted, own], format="csr")

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "features_")
        names = np.asarray(self.features_.get_feature_names_out(), dtype=object)
        return np.concatenate(
            [names, *[np.asarray([f"{t}|{n}" for n in names], dtype=object) for t in self.targets_]]
        )
