"""The integer-keyed n-gram count (features.gramindex) against the string analyzer it replaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import WordNgrams
from features.gramindex import GramIndex, Unindexable, gram_index
from features.ngrams import _TfidfNgrams

TRAIN = pd.DataFrame(
    {
        "text": [
            "I don't support the ban, but the law is clear!!!",
            "We should NOT legalize it; never, ever.",
            "#StopTheWar now @someone http://example.org/x?y=1 www.site.com",
            "The U.S. ban on whaling is well-known and it's fair",
            "Nobody wants this. No one! Not me, not you.",
            "legalize legalize legalize the thing",
            "",
            "Cats’ toys aren't dogs' toys ... ?!",
            "Ban guns ban guns — ban them",
            "Legal guns are banned guns, they say",
        ],
        "target": [
            "ban guns",
            "legalize cannabis",
            "ban whaling",
            "ban whaling",
            "legalize gambling",
            "legalize cannabis",
            "ban guns",
            "school uniforms",
            "ban guns",
            "legalize a ban on guns",  # three cue words: legal, ban, gun
        ],
    }
)
# Seen and unseen tokens, bigrams that cross nothing known, a target without cue words.
PREDICT = pd.DataFrame(
    {
        "text": [
            "I don't support legalizing it, but the ban is clear",
            "never support the ban!!! #BanTheBan @user2 https://t.co/abc",
            "brand new words only here",
            "",
            "the the the law law",
            "We should NOT legalize it; never, ever.",
        ],
        "target": [
            "ban guns",
            "legalize cannabis",
            "nuclear power",
            "ban whaling",
            "ban guns",
            "legalize a ban on guns",
        ],
    }
)

SETTINGS = [
    {},
    {"ngram_range": (1, 1)},
    {"ngram_range": (2, 3)},
    {"ngram_range": (1, 3), "negation": True},
    {"negation": True, "stemmer": "porter", "split_hashtags": True},
    {"tokenizer": "whitespace"},
    {"binary": True, "min_df": 2},
    {"cross_target_words": 2, "negation": True},
    {"cross_target_words": 2, "ngram_range": (1, 1), "stemmer": "snowball"},
]


def _string_counts(step: WordNgrams, X: pd.DataFrame):
    """What the string analyzer counts: the path the integer keys replace."""
    return _TfidfNgrams._count(step, step._documents(X))


def _setting_id(params: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "default"


@pytest.mark.parametrize("params", SETTINGS, ids=_setting_id)
def test_integer_keys_count_what_the_strings_count(params):
    step = WordNgrams(**params).fit(TRAIN)
    assert step._gram_index() is not None
    for X in (TRAIN, PREDICT):
        keyed = step._count(step._documents(X))
        strings = _string_counts(step, X)
        assert keyed.shape == strings.shape
        assert keyed.nnz == strings.nnz > 0
        np.testing.assert_array_equal(keyed.indptr, strings.indptr)
        np.testing.assert_array_equal(keyed.indices, strings.indices)
        np.testing.assert_array_equal(keyed.data, strings.data)


@pytest.mark.parametrize("params", SETTINGS, ids=_setting_id)
def test_batches_split_by_arrow_count_what_the_strings_count(params):
    # 66 rows and more: the word step splits with pyarrow and looks tokens up in bulk
    # (Tokenizer.flat), where its settings let it; non-ASCII and blank rows are among them.
    step = WordNgrams(**params).fit(TRAIN)
    tokenizer = step.counter_.analyzer.tokenizer
    for X in (TRAIN, PREDICT):
        batch = pd.concat([X] * 11, ignore_index=True)
        flat = tokenizer.flat(list(batch["text"]))
        assert (flat is not None) == (
            tokenizer.kind == "regex" and not tokenizer.negation and tokenizer.stemmer is None
        )
        keyed = step._count(step._documents(batch))
        strings = _string_counts(step, batch)
        assert keyed.nnz == strings.nnz > 0
        np.testing.assert_array_equal(keyed.indptr, strings.indptr)
        np.testing.assert_array_equal(keyed.indices, strings.indices)
        np.testing.assert_array_equal(keyed.data, strings.data)


def test_prefixes_and_the_tweet_tokenizer_keep_the_string_path():
    # A target may hold any character and a tweet token may hold spaces: neither splits back.
    assert WordNgrams(by_target=True).fit(TRAIN)._gram_index() is None
    assert WordNgrams(tokenizer="tweet").fit(TRAIN)._gram_index() is None


def test_a_vocabulary_that_does_not_split_into_its_range_is_refused():
    with pytest.raises(Unindexable):
        GramIndex({"a  b": 0}, (1, 2), None)  # two spaces: an empty token
    with pytest.raises(Unindexable):
        GramIndex({"a b c": 0}, (1, 2), None)
    with pytest.raises(Unindexable):
        GramIndex({"nocue|a": 0}, (1, 1), ("ban",))


def test_the_index_is_built_once_per_fitted_vocabulary():
    step = WordNgrams().fit(TRAIN)
    assert step._gram_index() is step._gram_index()
    refit = WordNgrams().fit(PREDICT)
    assert refit._gram_index() is not step._gram_index()
    assert gram_index(refit.counter_, refit.counter_.vocabulary_, (1, 2), None) is (
        refit._gram_index()
    )


_WORDS = st.sampled_from(
    ["no", "not", "ban", "it", "never", "but", ",", "!", "the", "law", "#NoBan", "x", "don't"]
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(_WORDS, max_size=12).map(" ".join), min_size=1, max_size=8),
    st.lists(st.lists(_WORDS, max_size=12).map(" ".join), min_size=1, max_size=8),
)
def test_any_sentences_count_alike(train_texts, predict_texts):
    def frame(texts):
        targets = ["ban it" if i % 2 else "ban the law" for i in range(len(texts))]
        return pd.DataFrame({"text": texts, "target": targets})

    if not any(t.strip() for t in train_texts):
        train_texts = train_texts + ["ban it"]
    tiled = (predict_texts * 64)[:64]  # enough rows for the Arrow split (Tokenizer.flat)
    for params in ({"ngram_range": (1, 3), "negation": True}, {"cross_target_words": 1}, {}):
        step = WordNgrams(**params).fit(frame(train_texts))
        for X in (frame(train_texts), frame(predict_texts), frame(tiled)):
            keyed = step._count(step._documents(X))
            strings = _string_counts(step, X)
            assert (keyed != strings).nnz == 0
            np.testing.assert_array_equal(keyed.indices, strings.indices)


def test_unigrams_without_their_table_count_alike(monkeypatch):
    # A vocabulary too wide for the unigram table falls back to the sorted keys.
    monkeypatch.setattr("features.gramindex._UNIGRAM_TABLE_LIMIT", 0)
    step = WordNgrams(cross_target_words=2, negation=True).fit(TRAIN)
    assert step._gram_index().unigram_columns is None
    keyed = step._count(step._documents(PREDICT))
    strings = _string_counts(step, PREDICT)
    assert keyed.nnz == strings.nnz > 0
    np.testing.assert_array_equal(keyed.indices, strings.indices)
    np.testing.assert_array_equal(keyed.data, strings.data)
