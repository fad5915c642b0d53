"""The shared contract every raw-text transformer honours.

scikit-learn's generic estimator checks feed numeric arrays, which these
transformers reject by design, so the parts of the contract that matter for
pipelines are checked here on a DataFrame of text and target.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features import (
    CharNgrams,
    SentimentLexicon,
    StyleFeatures,
    TargetNgrams,
    TargetRelatedness,
    TargetSpecificCopies,
    WordNgrams,
)
from features.pipeline import build_features
from features.prior import PriorModel


class LengthPrior:
    """A stand-in for a trained model: probabilities from the text's length, row by row."""

    labels = ("FAVOR", "AGAINST", "NONE")
    needs_target = False

    def __eq__(self, other):  # clone deep-copies it: a copy is the same prior
        return type(other) is type(self)

    __hash__ = object.__hash__

    def predict(self, frame):
        import pandas as pd

        share = frame["text"].str.len().to_numpy() / 100.0 % 1.0
        return pd.DataFrame(
            {"proba_FAVOR": share / 2, "proba_AGAINST": share / 2, "proba_NONE": 1 - share}
        )


TRANSFORMERS = [
    WordNgrams(),
    WordNgrams(tokenizer="tweet", negation=True, stemmer="snowball", ngram_range=(1, 3)),
    WordNgrams(by_target=True, min_df=2),
    WordNgrams(cross_target_words=1, negation=True),
    TargetNgrams(),
    CharNgrams(),
    CharNgrams(analyzer="char", ngram_range=(1, 3), max_features=50),
    TargetRelatedness(),
    TargetRelatedness(stemmer=None, bins=False),
    SentimentLexicon(),
    StyleFeatures(),
    TargetSpecificCopies(build_features({"word": {}, "style": {}}), shared_weight=0.5),
    PriorModel(LengthPrior(), weight=2.0),
]
IDS = [f"{type(t).__name__}-{i}" for i, t in enumerate(TRANSFORMERS)]


def comparable_params(estimator) -> dict:
    """Every parameter, nested ones included; a nested estimator (cloned, so a new
    object) counts by its type, its own parameters being listed beside it."""

    def plain(value):
        if hasattr(value, "get_params"):
            return type(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {k: plain(v) for k, v in estimator.get_params(deep=True).items()}


def dense(matrix):
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=IDS)
class TestTransformerContract:
    def test_init_only_stores_params(self, transformer):
        params = transformer.get_params(deep=False)
        rebuilt = type(transformer)(**params)
        assert rebuilt.get_params(deep=False) == params
        assert not [k for k in vars(rebuilt) if k.endswith("_")], (
            "learned state must not exist before fit"
        )

    def test_fit_returns_self_and_learns_state(self, transformer, sentences):
        estimator = clone(transformer)
        assert estimator.fit(sentences) is estimator
        assert [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]

    def test_not_fitted_error(self, transformer, sentences):
        with pytest.raises(NotFittedError):
            clone(transformer).transform(sentences)

    def test_clone_gives_unfitted_equal_params(self, transformer, sentences):
        fitted = clone(transformer).fit(sentences)
        copy = clone(fitted)
        assert comparable_params(copy) == comparable_params(fitted)
        with pytest.raises(NotFittedError):
            copy.transform(sentences)

    def test_pickle_round_trip_gives_same_output(self, transformer, sentences):
        fitted = clone(transformer).fit(sentences)
        restored = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(
            dense(restored.transform(sentences)), dense(fitted.transform(sentences))
        )

    def test_identical_output_on_repeat(self, transformer, sentences):
        first = dense(clone(transformer).fit_transform(sentences))
        second = dense(clone(transformer).fit(sentences).transform(sentences))
        np.testing.assert_array_equal(first, second)
        assert np.isfinite(first).all()

    def test_feature_names_match_columns(self, transformer, sentences):
        fitted = clone(transformer).fit(sentences)
        names = fitted.get_feature_names_out()
        assert len(names) == dense(fitted.transform(sentences)).shape[1]
        assert len(set(names)) == len(names)

    def test_rows_are_independent_of_batch(self, transformer, sentences):
        fitted = clone(transformer).fit(sentences)
        whole = dense(fitted.transform(sentences))
        one_row = dense(fitted.transform(sentences.iloc[[5]]))
        np.testing.assert_allclose(one_row, whole[[5]])

    def test_non_negative(self, transformer, sentences):
        # Naive Bayes models need non-negative features; every step provides them.
        assert dense(clone(transformer).fit_transform(sentences)).min() >= 0

    def test_rejects_a_bare_list(self, transformer):
        with pytest.raises(ValueError, match="DataFrame"):
            clone(transformer).fit(["just a string"])


def test_feature_union_pickles_and_clones(sentences):
    union = build_features(
        {
            "word": {},
            "char": {},
            "relatedness": {},
            "sentiment": {},
            "style": {},
            "target_words": {},
        }
    )
    fitted = union.fit(sentences)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        dense(restored.transform(sentences)), dense(fitted.transform(sentences))
    )
    assert clone(union).get_params(deep=False).keys() == union.get_params(deep=False).keys()


def test_unknown_feature_step_is_named():
    with pytest.raises(ValueError, match="Unknown feature step 'words'"):
        build_features({"words": {}})
