"""Target-aware steps: relatedness of text and target, and features copied per target."""

import numpy as np
import pandas as pd
import pytest

from features import TargetRelatedness, TargetSpecificCopies, WordNgrams


def test_relatedness_orders_related_above_unrelated():
    frame = pd.DataFrame(
        {
            "text": [
                "Missile strikes hit the base overnight",
                "The bakery opened a new shop",
                "Strike talks resumed",
            ],
            "target": ["missile strikes"] * 3,
        }
    )
    values = TargetRelatedness().fit_transform(frame).toarray()
    mentioned, coverage, cosine = values[:, 0], values[:, 1], values[:, 3]
    assert mentioned.tolist() == [1.0, 0.0, 1.0]
    assert coverage[0] > coverage[2] > coverage[1] == 0
    assert cosine[0] > cosine[1]
    assert values[:, 4:].sum(axis=1).tolist() == [
        1.0,
        1.0,
        1.0,
    ]  # exactly one similarity bin per row


def test_relatedness_matches_word_forms_only_when_stemming():
    frame = pd.DataFrame({"text": ["The strike was condemned"], "target": ["missile strikes"]})
    assert TargetRelatedness().fit_transform(frame).toarray()[0, 0] == 1.0
    assert TargetRelatedness(stemmer=None).fit_transform(frame).toarray()[0, 0] == 0.0


def test_relatedness_without_bins_has_four_named_columns(sentences):
    step = TargetRelatedness(bins=False).fit(sentences)
    assert step.get_feature_names_out().tolist() == [
        "mentioned",
        "target_coverage",
        "jaccard",
        "cosine",
    ]
    assert step.transform(sentences).shape == (len(sentences), 4)


@pytest.mark.parametrize("stemmer", ["porter", None])
def test_relatedness_tfidf_from_shared_tokens_equals_the_vectorizer_bit_for_bit(sentences, stemmer):
    # The step tokenizes each text once for cosine and overlaps; the cosine must stay what the
    # fitted TfidfVectorizer gives, so that models trained before predict the same.
    step = TargetRelatedness(stemmer=stemmer).fit(sentences)
    texts = sentences["text"].tolist() + ["words the vocabulary never saw: zyxwv qqq", ""]
    mine = step._tfidf(texts, step.tokenizer_.many(texts))
    theirs = step.vectorizer_.transform(texts)
    assert (mine != theirs).nnz == 0 and mine.nnz == theirs.nnz
    assert np.array_equal(mine.indices, theirs.indices) and np.array_equal(mine.data, theirs.data)


def test_relatedness_ignores_stop_words_of_the_target():
    # "the" and "of" occur in both, but say nothing about the text being on topic.
    frame = pd.DataFrame({"text": ["the best of the season"], "target": ["the cost of the war"]})
    assert TargetRelatedness().fit_transform(frame).toarray()[0, :3].tolist() == [0.0, 0.0, 0.0]


@pytest.fixture
def two_targets():
    return pd.DataFrame(
        {"text": ["ban it now", "keep it", "ban them"], "target": ["guns", "taxes", "guns"]}
    )


def test_copies_put_a_row_in_the_shared_block_and_its_own_targets_block(two_targets):
    copies = TargetSpecificCopies(WordNgrams(ngram_range=(1, 1)), shared_weight=0.5).fit(
        two_targets
    )
    values = copies.transform(two_targets).toarray()
    shared = copies.features_.transform(two_targets).toarray()
    width = shared.shape[1]
    guns, taxes = values[:, width : 2 * width], values[:, 2 * width :]
    np.testing.assert_allclose(values[:, :width], 0.5 * shared)
    np.testing.assert_array_equal(guns[[0, 2]], shared[[0, 2]])
    np.testing.assert_array_equal(taxes[1], shared[1])
    assert not guns[1].any() and not taxes[[0, 2]].any()


def test_copies_give_an_unseen_target_the_shared_block_only(two_targets):
    copies = TargetSpecificCopies(WordNgrams(ngram_range=(1, 1))).fit(two_targets)
    unseen = pd.DataFrame({"text": ["ban it now"], "target": ["tariffs"]})
    values = copies.transform(unseen).toarray()[0]
    width = copies.n_shared_
    assert values[:width].any() and not values[width:].any()
    assert values.shape == (width * 3,)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"features": None}, "needs features"),
        ({"shared_weight": 0}, "shared_weight must be a positive number"),
        ({"shared_weight": True}, "shared_weight must be a positive number"),
        ({"max_targets": 1}, "found 2 targets"),
    ],
)
def test_copies_refuse_what_they_cannot_build(two_targets, params, message):
    step = TargetSpecificCopies(**({"features": WordNgrams()} | params))
    with pytest.raises(ValueError, match=message):
        step.fit(two_targets)
