"""The integer-keyed n-gram count (features.gramindex) against the string analyzer it replaces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import CharNgrams, WordNgrams
from features.gramindex import CharGramIndex, GramIndex, Unindexable, gram_index
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


# Characters that trip a word-bounded char analyzer: whitespace other than the space (a tab, an
# em space, the file separator str.split also splits on), a letter whose lower case is longer
# (İ), a letter outside the basic plane. (A lone surrogate never reaches a step: the readers
# show undecodable bytes as visible escapes, and pandas' string columns refuse one.)
_CHARS = st.sampled_from(list("abcAB é.,#!'") + ["\t", "\n", "\u2003", "\x1c", "İ", "😀"])
_CHAR_TEXTS = st.lists(st.text(_CHARS, max_size=16), min_size=1, max_size=8)


def _analyzer_counts(step, texts):
    """What the step counted before the character index: scikit-learn's analyzer, string by
    string."""
    counts = _TfidfNgrams._count(step, texts)
    counts.sort_indices()
    return counts


@settings(max_examples=80, deadline=None)
@given(
    _CHAR_TEXTS,
    _CHAR_TEXTS,
    st.tuples(st.integers(1, 4), st.integers(0, 2)).map(lambda p: (p[0], p[0] + p[1])),
    st.booleans(),
)
def test_character_keys_count_what_the_analyzer_counts(train, predict, ngram_range, lowercase):
    if not any(text.split() for text in train):
        train = [*train, "no war"]
    step = CharNgrams(ngram_range=ngram_range, lowercase=lowercase).fit(
        pd.DataFrame({"text": train, "target": "t"})
    )
    assert step._char_index() is not None
    for texts in (train, predict):
        keyed = step._count(texts)
        analyzed = _analyzer_counts(step, texts)
        assert (keyed != analyzed).nnz == 0
        np.testing.assert_array_equal(keyed.indices, analyzed.indices)
        np.testing.assert_array_equal(keyed.data, analyzed.data)


def test_a_short_word_counts_once_and_unknown_characters_never_match():
    # " a " fits in every n from 3 up: the analyzer emits it once, at the first.
    index = CharGramIndex({" a ": 0, " ab": 1, "ab ": 2, " ab ": 3, "b ": 4}, (2, 4))
    counts = index.count(["a", "ab", "xb zz", "A"], lowercase=True).toarray()
    np.testing.assert_array_equal(
        counts, [[1, 0, 0, 0, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]]
    )


def test_too_many_characters_for_the_keys_keep_the_analyzer(monkeypatch):
    monkeypatch.setattr("features.gramindex._KEY_LIMIT", 10)
    step = CharNgrams(ngram_range=(2, 3)).fit(TRAIN)
    assert step._char_index() is None
    with pytest.raises(Unindexable):
        CharGramIndex(step.counter_.vocabulary_, (2, 3))
    counts = step._count(PREDICT["text"].tolist())
    assert (counts != _analyzer_counts(step, PREDICT["text"].tolist())).nnz == 0


def test_plain_char_ngrams_keep_the_analyzer():
    # analyzer="char" slides over the whole text, spaces included: not what the index keys.
    step = CharNgrams(ngram_range=(2, 3), analyzer="char").fit(TRAIN)
    assert step._char_index() is None
    counts = step._count(PREDICT["text"].tolist())
    assert (counts != _analyzer_counts(step, PREDICT["text"].tolist())).nnz == 0


def test_a_refitted_char_step_counts_with_its_new_vocabulary():
    step = CharNgrams(ngram_range=(2, 3)).fit(TRAIN)
    first = step._char_index()
    step.fit(PREDICT)
    assert step._char_index() is not first
    texts = TRAIN["text"].tolist()
    assert (step._count(texts) != _analyzer_counts(step, texts)).nnz == 0


def test_a_char_step_counts_with_its_fitted_settings_not_later_ones():
    step = CharNgrams(ngram_range=(2, 3)).fit(pd.DataFrame({"text": ["No war"], "target": "t"}))
    step.set_params(lowercase=False, ngram_range=(4, 4))
    assert (step._count(["NO war"]) != _analyzer_counts(step, ["NO war"])).nnz == 0
    assert step._count(["NO war"]).nnz > 0
