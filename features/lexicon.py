"""Sentiment features from the VADER lexicon, which ships inside the ``vadersentiment`` wheel."""

from __future__ import annotations

import numpy as np

from features.base import INSTALL_EXTRAS, TEXT, DenseFeatures, text_column, unique_inverse
from features.state import Int

try:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
except ImportError as error:  # a core dependency: the environment is not the locked one
    raise ImportError(
        "SentimentLexicon needs the VADER lexicon from the 'vadersentiment' package, which is not "
        f"installed. Install the locked environment with: {INSTALL_EXTRAS}"
    ) from error


class SentimentLexicon(DenseFeatures):
    """VADER sentiment of the text, split into non-negative parts.

    Columns: the positive, negative and neutral proportions, the compound
    score split into its positive and negative part (so naive Bayes models can
    use it), and the counts of lexicon words with positive and negative
    valence. VADER's lexicon arrives with ``pip install vadersentiment``; no
    download at run time.

    Parameters
    ----------
    column : str, default="text"

    Examples
    --------
    >>> import pandas as pd
    >>> texts = ["A wonderful, brave decision", "A disgraceful failure"]
    >>> X = pd.DataFrame({"text": texts, "target": ["t", "t"]})
    >>> values = SentimentLexicon().fit_transform(X).toarray()
    >>> bool(values[0, 3] > 0), bool(values[1, 4] > 0)
    (True, True)
    """

    fitted_state = {**DenseFeatures.fitted_state, "lexicon_size_": Int()}
    derived_state = ("_analyzer",)  # VADER's lexicon, loaded from its package on first use

    def __init__(self, column=TEXT):
        self.column = column

    def _prepare(self, X):
        self.lexicon_size_ = len(self._vader().lexicon)

    def _vader(self):
        # Loaded on first use and never pickled: the lexicon ships with the package.
        if getattr(self, "_analyzer", None) is None:
            self._analyzer = SentimentIntensityAnalyzer()
        return self._analyzer

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_analyzer", None)
        return state

    def _compute(self, X):
        texts = text_column(X, self.column, "SentimentLexicon")
        uniques, inverse = unique_inverse(texts)
        analyzer = self._vader()
        lexicon = analyzer.lexicon
        rows = np.zeros((len(uniques), len(self._names())))
        for i, text in enumerate(uniques):
            scores = analyzer.polarity_scores(text)
            valences = [lexicon.get(word.strip(".,!?;:\"'").lower(), 0.0) for word in text.split()]
            rows[i] = (
                scores["pos"],
                scores["neg"],
                scores["neu"],
                max(scores["compound"], 0.0),
                max(-scores["compound"], 0.0),
                sum(v > 0 for v in valences),
                sum(v < 0 for v in valences),
            )
        return rows[inverse]

    def _names(self):
        return [
            "pos",
            "neg",
            "neu",
            "compound_pos",
            "compound_neg",
            "n_positive_words",
            "n_negative_words",
        ]
