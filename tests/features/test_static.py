"""StaticEmbeddings: word-piece vectors distilled from the encoder, and the cache they live in."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features import static
from features.embeddings import SentenceEmbeddings
from features.static import StaticEmbeddings

pytestmark = pytest.mark.usefixtures("embeddings_extra")

STEPS = [
    StaticEmbeddings(),
    StaticEmbeddings(target_product=True, target_cosine=True, weighting="uniform"),
    StaticEmbeddings(text=False, target_cosine=True, split_hashtags=True, weight=0.5),
]
IDS = ["text", "text-product-cosine-uniform", "cosine-only"]


def dense(matrix) -> np.ndarray:
    return matrix.toarray()


@pytest.mark.parametrize("step", STEPS, ids=IDS)
class TestContract:
    def test_init_stores_params_and_nothing_else(self, step):
        rebuilt = type(step)(**step.get_params())
        assert rebuilt.get_params() == step.get_params()
        assert not [key for key in vars(rebuilt) if key.endswith("_")]

    def test_not_fitted_error(self, step, sentences):
        with pytest.raises(NotFittedError):
            clone(step).transform(sentences)

    def test_clone_of_a_fitted_step_is_unfitted(self, step, sentences):
        copy = clone(clone(step).fit(sentences))
        assert copy.get_params() == step.get_params()
        with pytest.raises(NotFittedError):
            copy.transform(sentences)

    def test_pickle_round_trip_and_repeat_give_identical_output(self, step, sentences):
        fitted = clone(step).fit(sentences)
        first = dense(fitted.transform(sentences))
        restored = pickle.loads(pickle.dumps(fitted))
        np.testing.assert_array_equal(dense(restored.transform(sentences)), first)
        np.testing.assert_array_equal(dense(clone(step).fit_transform(sentences)), first)
        assert np.isfinite(first).all()

    def test_names_match_columns_and_rows_do_not_depend_on_the_batch(self, step, sentences):
        fitted = clone(step).fit(sentences)
        whole = dense(fitted.transform(sentences))
        assert len(fitted.get_feature_names_out()) == whole.shape[1]
        np.testing.assert_allclose(dense(fitted.transform(sentences.iloc[[5]])), whole[[5]])

    def test_rejects_a_bare_list(self, step):
        with pytest.raises(ValueError, match="DataFrame"):
            clone(step).fit(["just a string"])


def test_a_one_piece_text_gets_the_encoders_own_vector_of_that_text(sentences):
    """The table's row for a piece is the encoder's embedding of the piece alone."""
    words = pd.DataFrame({"text": ["reckless", "good", "tram"], "target": ["t"] * 3})
    distilled = dense(StaticEmbeddings(weighting="uniform").fit(sentences).transform(words))
    encoded = dense(SentenceEmbeddings().fit(words).transform(words))
    cosines = (distilled * encoded).sum(axis=1)
    assert cosines.min() > 0.999  # float16 and int8 rounding are the only differences


def test_related_words_are_closer_than_unrelated_ones(sentences):
    step = StaticEmbeddings(weighting="uniform").fit(sentences)
    texts = ["a reckless decision", "an irresponsible decision", "a blue bicycle"]
    vectors = dense(step.transform(pd.DataFrame({"text": texts, "target": ["t"] * 3})))
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_idf_weights_rare_pieces_above_common_ones(sentences):
    step = StaticEmbeddings().fit(sentences)
    (the,) = static._tokenizer().encode("the", add_special_tokens=False).ids
    assert step.idf_[the] < step.idf_.max()


def test_per_target_copies_share_one_table_in_the_pickle(sentences):
    """A per-target model holds one step per target; the 12 MB table is written once."""
    one = StaticEmbeddings().fit(sentences)
    two = StaticEmbeddings(weight=0.5).fit(sentences)
    assert one.vectors_ is two.vectors_
    size_one, size_two = len(pickle.dumps(one)), len(pickle.dumps([one, two]))
    assert size_two < 1.1 * size_one


def test_unknown_weighting_is_refused_in_fit(sentences):
    with pytest.raises(ValueError, match="weighting must be one of"):
        StaticEmbeddings(weighting="tfidf").fit(sentences)


def test_a_damaged_cache_file_is_rebuilt_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("STANCE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(static, "_TABLES", {})
    built = []

    def small_table():
        built.append(1)
        return np.full((4, 2), len(built), dtype=np.float16)

    monkeypatch.setattr(static, "distil", small_table)
    first = static.piece_table()
    assert len(built) == 1 and list(tmp_path.glob("pieces-*.npy"))
    monkeypatch.setattr(static, "_TABLES", {})
    np.testing.assert_array_equal(static.piece_table(), first)  # read back, not rebuilt
    assert len(built) == 1
    cached = next(tmp_path.glob("pieces-*.npy"))
    cached.write_bytes(cached.read_bytes()[:-4] + b"\x00\x00\x00\x01")
    monkeypatch.setattr(static, "_TABLES", {})
    rebuilt = static.piece_table()
    assert len(built) == 2 and rebuilt[0, 0] == 2
