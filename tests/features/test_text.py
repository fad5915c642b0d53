import pickle

import pandas as pd
import pytest

from features import TargetRelatedness, Tokenizer, WordNgrams
from features.text import NgramAnalyzer, spell_out_hashtags


def test_regex_tokenizer_keeps_hashtags_and_normalizes_handles_and_urls():
    tokens = Tokenizer()("@CNN Stop the #CarbonTax now!!! https://t.co/x U.S. well-known")
    assert tokens == ["@user", "stop", "the", "#carbontax", "now", "!!!", "<url>", "u.s.", "well-known"]


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


def test_target_conditioned_ngrams_separate_targets():
    frame = pd.DataFrame({"text": ["good idea", "good idea"], "target": ["tax", "strikes"]})
    names = WordNgrams(ngram_range=(1, 1), by_target=True).fit(frame).get_feature_names_out().tolist()
    assert names == ["strikes|good", "strikes|idea", "tax|good", "tax|idea"]


def test_relatedness_orders_related_above_unrelated():
    frame = pd.DataFrame(
        {
            "text": ["Missile strikes hit the base overnight", "The bakery opened a new shop", "Strike talks resumed"],
            "target": ["missile strikes"] * 3,
        }
    )
    values = TargetRelatedness().fit_transform(frame).toarray()
    mentioned, coverage, cosine = values[:, 0], values[:, 1], values[:, 3]
    assert mentioned.tolist() == [1.0, 0.0, 1.0]
    assert coverage[0] > coverage[2] > coverage[1] == 0
    assert cosine[0] > cosine[1]
    assert values[:, 4:].sum(axis=1).tolist() == [1.0, 1.0, 1.0]  # exactly one similarity bin per row


@pytest.mark.parametrize("params", [{}, {"negation": True, "stemmer": "porter"}, {"by_target": True, "binary": True}, {"ngram_range": (1, 3), "min_df": 2}])
def test_fast_counting_equals_countvectorizer(sentences, params):
    step = WordNgrams(**params).fit(sentences)
    documents = step._documents(sentences)
    fast, reference = step._count(documents), step.counter_.transform(documents)
    assert (fast != reference).nnz == 0 and fast.shape == reference.shape


def test_target_cue_crosses_carry_over_to_an_unseen_target():
    train = pd.DataFrame(
        {
            "text": ["Whaling is cruel", "Whaling feeds towns", "Cruel surrogacy deals", "Surrogacy helps families"],
            "target": ["We should ban whaling", "We should ban whaling", "Surrogacy should be banned", "Surrogacy should be banned"],
        }
    )
    step = WordNgrams(ngram_range=(1, 1), cross_target_words=2).fit(train)
    # "ban" and "banned" stem to one cue shared by both targets; "whaling" is in one target only.
    assert step.target_cues_ == ("ban",)
    unseen = pd.DataFrame({"text": ["Factory farming is cruel", "Cruel"], "target": ["ban factory farming", "adopt atheism"]})
    values = step.transform(unseen).toarray()
    names = step.get_feature_names_out().tolist()
    assert values[0, names.index("ban|cruel")] > 0
    assert not values[1].any(), "a target with no cue word gets no crossed features"


def test_target_cues_and_whole_target_prefixes_are_exclusive(sentences):
    with pytest.raises(ValueError, match="alternatives"):
        WordNgrams(by_target=True, cross_target_words=2).fit(sentences)


def test_spell_out_hashtags_replaces_each_tag_with_its_words():
    assert spell_out_hashtags("#StopTheWar rally, #NATO summit #2024") == "Stop The War rally, NATO summit 2024"
    assert spell_out_hashtags("no tags here") == "no tags here"
    # The tokenizer's split_hashtags keeps the tag itself as well, for n-grams.
    assert "#stopthewar" in Tokenizer(split_hashtags=True)("#StopTheWar")
