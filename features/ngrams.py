"""TF-IDF n-gram features over the text, the target, or the text conditioned on the target."""

from __future__ import annotations

from collections import Counter
from itertools import repeat

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.utils.validation import check_is_fitted

from features.base import TARGET, TEXT, text_column, unique_inverse
from features.gramindex import GramIndex, char_gram_index, count_matrix, gram_index
from features.state import Child, Int, Strings
from features.text import TARGET_SEPARATOR, NgramAnalyzer, Tokenizer, cue_words


class _TfidfNgrams(TransformerMixin, BaseEstimator):
    """Count n-grams once per distinct document, then weight them with TF-IDF.

    Document statistics (vocabulary, ``min_df``, ``max_df``, idf weights) are
    computed over distinct documents: a body that FNC-1 pairs with forty
    headlines counts once, not forty times, and is tokenized once.
    """

    # What a model file keeps of a fitted step (features/state.py).
    fitted_state = {
        "counter_": Child(("CountVectorizer",)),
        "tfidf_": Child(("TfidfTransformer",)),
        "vocabulary_size_": Int(),
    }

    @staticmethod
    def check_state(step):
        size = len(step.counter_.vocabulary_)
        if not size == step.vocabulary_size_ == step.tfidf_.n_features_in_:
            raise ValueError(
                f"the vocabulary has {size} n-grams, vocabulary_size_ says "
                f"{step.vocabulary_size_} and the TF-IDF weights {step.tfidf_.n_features_in_}"
            )

    def _analyzer(self):
        raise NotImplementedError

    def _documents(self, X):
        return text_column(X, self.column, type(self).__name__)

    def _count_settings(self) -> dict:
        """The CountVectorizer's parameters, but for the analyzer (which may need fitted state)."""
        return {
            "min_df": self.min_df,
            "max_df": self.max_df,
            "max_features": self.max_features,
            "binary": self.binary,
            "dtype": np.float64,
        }

    def _counter(self):
        return CountVectorizer(analyzer=self._analyzer(), **self._count_settings())

    def _unique_counts(self, X, fit: bool):
        uniques, inverse = unique_inverse(self._documents(X))
        if fit:
            self.counter_ = self._counter().fit(uniques)
            return self.counter_.transform(uniques), inverse
        counts = self._count(uniques)
        if self.binary:
            counts.data[:] = 1.0
        return counts, inverse

    def _count(self, documents) -> sp.csr_matrix:
        """``counter_.transform`` without its per-n-gram Python loop: all n-grams of
        the batch are looked up in one ``map`` over the vocabulary's C-level
        ``dict.get``, and numpy builds the matrix. Same counts, about 1.7 times faster.
        Raw counts: ``binary`` is applied by the caller."""
        vocabulary = self.counter_.vocabulary_
        analyze = self.counter_.build_analyzer()
        grams: list[str] = []
        lengths = np.empty(len(documents), dtype=np.int64)
        for row, document in enumerate(documents):
            document_grams = analyze(document)
            grams.extend(document_grams)
            lengths[row] = len(document_grams)
        columns = np.fromiter(
            map(vocabulary.get, grams, repeat(-1, len(grams))), dtype=np.int64, count=len(grams)
        )
        rows = np.repeat(np.arange(len(documents)), lengths)
        known = columns >= 0
        return count_matrix(rows[known], columns[known], (len(documents), len(vocabulary)))

    def fit(self, X, y=None):
        self._check_params()
        counts, _ = self._unique_counts(X, fit=True)
        self.tfidf_ = TfidfTransformer(sublinear_tf=self.sublinear_tf, use_idf=self.use_idf).fit(
            counts
        )
        self.vocabulary_size_ = counts.shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "tfidf_")
        counts, inverse = self._unique_counts(X, fit=False)
        return self.tfidf_.transform(counts)[inverse]

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "tfidf_")
        # Plain n-grams; a FeatureUnion prefixes them with the step name ("word__no war").
        return np.asarray(self.counter_.get_feature_names_out(), dtype=object)

    def reads_target(self) -> bool:
        return self.column == TARGET

    def _check_params(self):
        low, high = self.ngram_range
        if not 1 <= low <= high:
            raise ValueError(
                f"ngram_range must satisfy 1 <= low <= high, got {self.ngram_range!r}."
            )
        # The wrapped scikit-learn steps check min_df, max_df, max_features and the rest.
        CountVectorizer(**self._count_settings())._validate_params()
        TfidfTransformer(sublinear_tf=self.sublinear_tf, use_idf=self.use_idf)._validate_params()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


class WordNgrams(_TfidfNgrams):
    """TF-IDF weighted word n-grams of the ``text`` column.

    Parameters
    ----------
    ngram_range : tuple of int, default=(1, 2)
    tokenizer : {"regex", "tweet", "whitespace"}, default="regex"
        See :class:`features.text.Tokenizer`.
    negation : bool, default=False
        Mark tokens in a negated clause with ``_NEG``.
    stemmer : {None, "porter", "snowball"}, default=None
    split_hashtags : bool, default=False
        Add the words of CamelCase hashtags (``#StopTheWar`` -> stop the war).
    by_target : bool, default=False
        Prefix every n-gram with the row's target, so "abortion|choice" and
        "hillary|choice" are distinct features (n-grams conditioned on the target).
    cross_target_words : int, default=0
        If above 0, emit every n-gram once per *cue word* of the row's target
        instead: a content word (Porter-stemmed) that occurs in at least this
        many distinct training targets. "ban|cruel" learned from "ban whaling"
        carries over to an unseen "ban factory farming", which whole-target
        prefixes cannot do. Rows whose target has no cue word get no features.
    min_df, max_df, max_features, binary, sublinear_tf, use_idf
        As in scikit-learn's ``TfidfVectorizer``.
    column : str, default="text"

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"text": ["Ban it now", "Do not ban it"], "target": ["ban", "ban"]})
    >>> WordNgrams(ngram_range=(1, 1)).fit(X).get_feature_names_out().tolist()
    ['ban', 'do', 'it', 'not', 'now']
    """

    def __init__(
        self,
        ngram_range=(1, 2),
        tokenizer="regex",
        negation=False,
        stemmer=None,
        split_hashtags=False,
        by_target=False,
        cross_target_words=0,
        min_df=1,
        max_df=1.0,
        max_features=None,
        binary=False,
        sublinear_tf=True,
        use_idf=True,
        column=TEXT,
    ):
        self.ngram_range = ngram_range
        self.tokenizer = tokenizer
        self.negation = negation
        self.stemmer = stemmer
        self.split_hashtags = split_hashtags
        self.by_target = by_target
        self.cross_target_words = cross_target_words
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.binary = binary
        self.sublinear_tf = sublinear_tf
        self.use_idf = use_idf
        self.column = column

    fitted_state = {
        **_TfidfNgrams.fitted_state,
        "target_cues_": Strings("tuple", optional=True),  # with cross_target_words only
    }

    def _analyzer(self):
        tokenizer = Tokenizer(
            kind=self.tokenizer,
            negation=self.negation,
            stemmer=self.stemmer,
            split_hashtags=self.split_hashtags,
        )
        cues = frozenset(self.target_cues_) if self.cross_target_words else None
        return NgramAnalyzer(
            tokenizer, tuple(self.ngram_range), prefix_target=self.by_target, target_cues=cues
        )

    def reads_target(self) -> bool:
        # Crossed with the target (target_conditioned) or with its cue words (target_cues).
        return bool(self.by_target or self.cross_target_words) or super().reads_target()

    def fit(self, X, y=None):
        if self.cross_target_words:
            if self.by_target:
                raise ValueError(
                    "by_target and cross_target_words are alternatives; set one of them."
                )
            # Cue words: target words shared by several targets ("ban", "legalize"),
            # learned before the vocabulary because the analyzer emits their crosses.
            targets = np.unique(text_column(X, TARGET, type(self).__name__))
            spread = Counter(word for target in targets for word in set(cue_words(target)))
            self.target_cues_ = tuple(
                sorted(w for w, n in spread.items() if n >= self.cross_target_words)
            )
            if not self.target_cues_:
                # Every n-gram is emitted per cue word, so no cue means no feature at all;
                # say why here rather than let the vectorizer report an empty vocabulary.
                shown = ", ".join(repr(t) for t in targets[:3]) + (
                    ", ..." if len(targets) > 3 else ""
                )
                raise ValueError(
                    f"cross_target_words={self.cross_target_words} keeps the target words that "
                    f"at least {self.cross_target_words} training targets share, and the "
                    f"{len(targets)} target(s) here ({shown}) share none. Fix: train on rows of "
                    "more targets, lower cross_target_words, or leave this step out of the "
                    "experiment (for target_cues: features.target_cues = false)"
                )
        return super().fit(X, y)

    def _count(self, documents) -> sp.csr_matrix:
        index = self._gram_index()
        if index is None:
            return super()._count(documents)
        tokenizer = self.counter_.analyzer.tokenizer
        if self.cross_target_words:
            targets, texts = _split_targets(documents)
            cues_of = {
                target: [index.cues[cue] for cue in set(cue_words(target)) if cue in index.cues]
                for target in set(targets)
            }
            row_cues = [cues_of[target] for target in targets]
        else:
            texts, row_cues = documents, None
        flat = tokenizer.flat(texts)
        if flat is not None:
            return index.count_flat(*flat, len(texts), row_cues)
        return index.count(tokenizer.many(texts), row_cues)

    def _gram_index(self) -> GramIndex | None:
        """Integer keys for this vocabulary, where its n-grams can be split back into tokens:
        not with target prefixes (a target may hold any character) or NLTK's tweet tokenizer
        (whose phone-number tokens hold spaces)."""
        if self.by_target or self.tokenizer not in ("regex", "whitespace"):
            return None
        cues = tuple(self.target_cues_) if self.cross_target_words else None
        return gram_index(self.counter_, self.counter_.vocabulary_, self.ngram_range, cues)

    def _documents(self, X):
        texts = super()._documents(X)
        if not (self.by_target or self.cross_target_words):
            return texts
        targets = text_column(X, TARGET, type(self).__name__)
        # One string per row keeps de-duplication cheap; the analyzer splits it again.
        return np.asarray([t + TARGET_SEPARATOR + x for t, x in zip(targets, texts)], dtype=object)


def _split_targets(documents) -> tuple[list[str], list[str]]:
    """``target + TARGET_SEPARATOR + text`` documents back into targets and texts."""
    targets, texts = [], []
    for document in documents:
        target, _, text = document.partition(TARGET_SEPARATOR)
        targets.append(target)
        texts.append(text)
    return targets, texts


class TargetNgrams(WordNgrams):
    """TF-IDF word n-grams of the ``target`` column (a headline, a topic, a claim).

    Useful when targets are sentences (FNC-1 headlines, ArgQ topics): the
    model learns which claim words go with which stance. Same parameters as
    :class:`WordNgrams`, reading ``column="target"``.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"text": ["a", "b"], "target": ["We should ban guns", "Ban guns"]})
    >>> TargetNgrams(ngram_range=(1, 1)).fit(X).get_feature_names_out().tolist()
    ['ban', 'guns', 'should', 'we']
    """

    derived_state = ("cross_target_words",)  # always 0 here: set by the constructor, not fit

    def __init__(
        self,
        ngram_range=(1, 1),
        tokenizer="regex",
        negation=False,
        stemmer=None,
        split_hashtags=False,
        by_target=False,
        min_df=1,
        max_df=1.0,
        max_features=None,
        binary=False,
        sublinear_tf=True,
        use_idf=True,
        column=TARGET,
    ):
        super().__init__(
            ngram_range=ngram_range,
            tokenizer=tokenizer,
            negation=negation,
            stemmer=stemmer,
            split_hashtags=split_hashtags,
            by_target=by_target,
            min_df=min_df,
            max_df=max_df,
            max_features=max_features,
            binary=binary,
            sublinear_tf=sublinear_tf,
            use_idf=use_idf,
            column=column,
        )


class CharNgrams(_TfidfNgrams):
    """TF-IDF weighted character n-grams of the ``text`` column.

    Character n-grams inside word boundaries (``analyzer="char_wb"``) catch
    spelling variants, hashtags glued to words and morphology that word
    n-grams miss.

    Parameters
    ----------
    ngram_range : tuple of int, default=(2, 5)
    analyzer : {"char_wb", "char"}, default="char_wb"
    lowercase : bool, default=True
    min_df, max_df, max_features, binary, sublinear_tf, use_idf
        As in scikit-learn's ``TfidfVectorizer``.
    column : str, default="text"

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"text": ["no", "on"], "target": ["t", "t"]})
    >>> CharNgrams(ngram_range=(2, 2)).fit(X).get_feature_names_out().tolist()
    [' n', ' o', 'n ', 'no', 'o ', 'on']
    """

    def __init__(
        self,
        ngram_range=(2, 5),
        analyzer="char_wb",
        lowercase=True,
        min_df=1,
        max_df=1.0,
        max_features=None,
        binary=False,
        sublinear_tf=True,
        use_idf=True,
        column=TEXT,
    ):
        self.ngram_range = ngram_range
        self.analyzer = analyzer
        self.lowercase = lowercase
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.binary = binary
        self.sublinear_tf = sublinear_tf
        self.use_idf = use_idf
        self.column = column

    def _count_settings(self) -> dict:
        return {
            **super()._count_settings(),
            "analyzer": self.analyzer,
            "ngram_range": tuple(self.ngram_range),
            "lowercase": self.lowercase,
        }

    def _check_params(self):
        if self.analyzer not in ("char_wb", "char"):
            raise ValueError(f"analyzer must be 'char_wb' or 'char', got {self.analyzer!r}.")
        super()._check_params()

    def _counter(self):
        return CountVectorizer(**self._count_settings())

    def _char_index(self):
        """The fitted vocabulary keyed by characters, or None where the analyzer must count
        (``analyzer="char"``, or more characters than int64 keys can hold)."""
        if self.counter_.analyzer != "char_wb":
            return None
        # The fitted counter's settings, as the analyzer path reads them; kept per counter, so
        # that a refit, which makes a new counter, makes a new index.
        counter = self.counter_
        return char_gram_index(counter, counter.vocabulary_, counter.ngram_range)

    def _count(self, documents) -> sp.csr_matrix:
        # Word-bounded n-grams by numpy over code points (features.gramindex.CharGramIndex):
        # the same counts as the analyzer's, 3.97x its rows/s (benchmarks/tokenize_speed.py).
        index = self._char_index()
        if index is None:
            return super()._count(documents)
        return index.count(list(documents), self.counter_.lowercase)
