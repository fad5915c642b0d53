"""Tokenizing, negation marking, hashtags and the n-gram analyzer of features/text.py."""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import Tokenizer
from features.text import (
    _ARROW_MIN_TEXTS,
    NgramAnalyzer,
    cue_words,
    mark_negation,
    spell_out_hashtags,
)


def test_regex_tokenizer_keeps_hashtags_and_normalizes_handles_and_urls():
    tokens = Tokenizer()("@CNN Stop the #CarbonTax now!!! https://t.co/x U.S. well-known")
    assert tokens == [
        "@user",
        "stop",
        "the",
        "#carbontax",
        "now",
        "!!!",
        "<url>",
        "u.s.",
        "well-known",
    ]


def test_tweet_tokenizer_reduces_elongation():
    assert "sooo" in Tokenizer(kind="tweet")("This is soooooo wrong")


def test_negation_marks_until_clause_end():
    tokens = Tokenizer(negation=True)("We do not support the tax, but we like it.")
    assert tokens[3:6] == ["support_NEG", "the_NEG", "tax_NEG"]
    assert "like" in tokens and "like_NEG" not in tokens


@pytest.mark.parametrize("stemmer", ["porter", "snowball"])
def test_stemming_keeps_the_negation_mark(stemmer):
    tokens = Tokenizer(negation=True, stemmer=stemmer)("never supporting strikes")
    assert tokens == ["never", "support_NEG", "strike_NEG"]


def test_tokenizer_pickles_and_compares_equal():
    tokenizer = Tokenizer(kind="tweet", stemmer="porter")
    restored = pickle.loads(pickle.dumps(tokenizer))
    assert restored == tokenizer
    assert restored("running fast") == ["run", "fast"]


def test_unknown_tokenizer_names_the_choices():
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        Tokenizer(kind="spacy")


def test_ngram_analyzer_builds_bigrams_and_target_prefixes():
    analyzer = NgramAnalyzer(Tokenizer(), (1, 2), prefix_target=True)
    assert analyzer("tax\x1fcut it") == ["tax|cut", "tax|it", "tax|cut it"]


def test_spell_out_hashtags_replaces_each_tag_with_its_words():
    assert (
        spell_out_hashtags("#StopTheWar rally, #NATO summit #2024")
        == "Stop The War rally, NATO summit 2024"
    )
    assert spell_out_hashtags("no tags here") == "no tags here"
    # The tokenizer's split_hashtags keeps the tag itself as well, for n-grams.
    assert "#stopthewar" in Tokenizer(split_hashtags=True)("#StopTheWar")


@pytest.mark.parametrize("ending", ["but", "however", ";", "."])
def test_negation_scope_ends_at_a_contrast_or_a_clause_break(ending):
    tokens = mark_negation(["no", "war", ending, "peace"])
    assert tokens == ["no", "war_NEG", ending, "peace"]


def test_ngram_analyzer_builds_trigrams_without_unigrams():
    analyzer = NgramAnalyzer(Tokenizer(), (2, 3))
    assert analyzer("end the war") == ["end the", "the war", "end the war"]


def test_cue_words_are_stemmed_content_words_of_the_target():
    assert cue_words("We should ban whaling") == ("ban", "whale")
    assert cue_words("Whaling should be banned") == ("whale", "ban")


def test_target_cues_cross_only_the_cues_of_the_rows_target():
    analyzer = NgramAnalyzer(Tokenizer(), (1, 1), target_cues=frozenset({"ban", "subsid"}))
    assert analyzer("We should ban whaling\x1fcruel hunt") == ["ban|cruel", "ban|hunt"]
    assert analyzer("Adopt atheism\x1fcruel hunt") == []


def test_many_reuses_a_batch_only_for_the_same_settings():
    texts = ["I don't like it, but fine", "no war", "#StopTheWar now"]
    plain, negating = Tokenizer(), Tokenizer(negation=True)
    assert plain.many(texts) == [plain(t) for t in texts]
    # The second tokenizer has other settings: the first one's batch must not answer for it.
    assert negating.many(texts) == [negating(t) for t in texts]
    assert negating.many(texts)[0] == ["i", "don't", "like_NEG", "it_NEG", ",", "but", "fine"]
    assert plain.many(texts[::-1]) == [plain(t) for t in texts[::-1]]


def test_many_shares_splits_between_tokenizers_that_split_alike():
    # FNC-1's word step marks negation and its relatedness step stems; both split the same way,
    # so the second reuses the first's split. The tokens must be what each gives alone.
    texts = ["They didn't strike the bases", "Strikes, not talks", "", "#NoWar www.x.org @a"]
    negating = Tokenizer(negation=True)
    stemming = Tokenizer(stemmer="porter")
    hashtags = Tokenizer(split_hashtags=True)  # splits otherwise: must not take the others' splits
    for tokenizer in (negating, stemming, hashtags, negating, stemming):
        assert tokenizer.many(texts) == [Tokenizer(**tokenizer.__getstate__())(t) for t in texts]
    assert stemming.many(texts)[1] == ["strike", ",", "not", "talk"]
    assert negating.many(texts)[0] == ["they", "didn't", "strike_NEG", "the_NEG", "bases_NEG"]


# Pieces that sit on the token pattern's edges: each alternative's start, the characters its
# classes split on (Python's \s takes \v and \x1c-\x1f, RE2's does not), and non-ASCII text,
# which the Arrow route must leave to Python.
_EDGES = st.sampled_from(
    [
        "http://", "https://", "www.", "u.s.", "e.g.", "@", "#", "'", "-", ".", ":", "/", "!",
        "?", ",", "_", " ", "  ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\xa0",
        "’", "é", "İ", "ß", "😀", "A", "b", "Z", "7", "war", "Don't", "well-known", "StopTheWar",
    ]
)  # fmt: skip
_TEXTS = st.lists(st.lists(_EDGES, max_size=12).map("".join), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    texts=_TEXTS,
    options=st.sampled_from(
        [{}, {"lowercase": False}, {"normalize_urls": False}, {"split_hashtags": True}]
    ),
)
def test_a_batch_split_by_arrow_gives_the_tokens_of_python_re(texts, options):
    tokenizer = Tokenizer(**options)
    batch = (texts * _ARROW_MIN_TEXTS)[: max(_ARROW_MIN_TEXTS, len(texts))]
    assert tokenizer._split_texts(batch) == [tokenizer._split_text(text) for text in batch]


def test_a_batch_split_by_arrow_keeps_blank_texts_and_texts_left_to_python():
    texts = ["", "  ", "No war!! See www.x.org, @Ann", "target\x1fthe U.S. strikes", "Café’s war"]
    batch = texts * _ARROW_MIN_TEXTS
    tokens = Tokenizer().many(batch)
    assert tokens[:5] == [
        [],
        [],
        ["no", "war", "!!", "see", "<url>", "@user"],
        ["target", "the", "u.s.", "strikes"],  # \x1f is whitespace to Python
        ["café’s", "war"],
    ]
