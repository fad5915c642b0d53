"""Surface style of a sentence: punctuation, hashtags, capitals, quotes, links."""

from __future__ import annotations

import re

import numpy as np

from features.base import TEXT, DenseFeatures, text_column, unique_inverse

_PATTERNS = {
    "exclamations": re.compile(r"!"),
    "questions": re.compile(r"\?"),
    "hashtags": re.compile(r"#\w+"),
    "mentions": re.compile(r"@\w+"),
    "urls": re.compile(r"https?://\S+|www\.\S+"),
    "quotes": re.compile(r"[\"“”«»]"),
    "capitalized_words": re.compile(r"\b[A-Z]{2,}\b"),
    "elongated_words": re.compile(r"(\w)\1{2,}"),
    "first_person": re.compile(r"\b(?:i|me|my|we|us|our)\b", re.IGNORECASE),
    "second_person": re.compile(r"\b(?:you|your)\b", re.IGNORECASE),
}


class StyleFeatures(DenseFeatures):
    """Counts of stylistic markers, plus length and the share of capital letters.

    Counts are ``log1p``-damped so one tweet with thirty exclamation marks does
    not dominate the scale learned in ``fit``.

    Parameters
    ----------
    column : str, default="text"

    Examples
    --------
    >>> import pandas as pd
    >>> texts = ["STOP this now!!! #NoWar", "A calm note."]
    >>> X = pd.DataFrame({"text": texts, "target": ["t", "t"]})
    >>> names = StyleFeatures().fit(X).get_feature_names_out().tolist()
    >>> names[:3]
    ['exclamations', 'questions', 'hashtags']
    """

    def __init__(self, column=TEXT):
        self.column = column

    def _compute(self, X):
        texts = text_column(X, self.column, "StyleFeatures")
        uniques, inverse = unique_inverse(texts)
        rows = np.zeros((len(uniques), len(self._names())))
        for i, text in enumerate(uniques):
            counts = [len(pattern.findall(text)) for pattern in _PATTERNS.values()]
            letters = sum(map(str.isalpha, text))
            capitals = sum(map(str.isupper, text))
            rows[i, : len(counts)] = np.log1p(counts)
            rows[i, len(counts)] = np.log1p(len(text))
            rows[i, len(counts) + 1] = capitals / letters if letters else 0.0
        return rows[inverse]

    def _names(self):
        return [*_PATTERNS, "log_length", "capital_share"]
