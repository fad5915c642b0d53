"""Word, target and character n-gram steps: what they count and what they refuse."""

import pandas as pd
import pytest

from features import CharNgrams, TargetNgrams, WordNgrams


def test_target_conditioned_ngrams_separate_targets():
    frame = pd.DataFrame({"text": ["good idea", "good idea"], "target": ["tax", "strikes"]})
    names = (
        WordNgrams(ngram_range=(1, 1), by_target=True).fit(frame).get_feature_names_out().tolist()
    )
    assert names == ["strikes|good", "strikes|idea", "tax|good", "tax|idea"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"negation": True, "stemmer": "porter"},
        {"by_target": True, "binary": True},
        {"ngram_range": (1, 3), "min_df": 2},
    ],
)
def test_fast_counting_equals_countvectorizer(sentences, params):
    step = WordNgrams(**params).fit(sentences)
    documents = step._documents(sentences)
    fast, reference = step._count(documents), step.counter_.transform(documents)
    assert (fast != reference).nnz == 0 and fast.shape == reference.shape


def test_target_cue_crosses_carry_over_to_an_unseen_target():
    train = pd.DataFrame(
        {
            "text": [
                "Whaling is cruel",
                "Whaling feeds towns",
                "Cruel surrogacy deals",
                "Surrogacy helps families",
            ],
            "target": [
                "We should ban whaling",
                "We should ban whaling",
                "Surrogacy should be banned",
                "Surrogacy should be banned",
            ],
        }
    )
    step = WordNgrams(ngram_range=(1, 1), cross_target_words=2).fit(train)
    # "ban" and "banned" stem to one cue shared by both targets; "whaling" is in one target only.
    assert step.target_cues_ == ("ban",)
    unseen = pd.DataFrame(
        {
            "text": ["Factory farming is cruel", "Cruel"],
            "target": ["ban factory farming", "adopt atheism"],
        }
    )
    values = step.transform(unseen).toarray()
    names = step.get_feature_names_out().tolist()
    assert values[0, names.index("ban|cruel")] > 0
    assert not values[1].any(), "a target with no cue word gets no crossed features"


def test_target_cues_and_whole_target_prefixes_are_exclusive(sentences):
    with pytest.raises(ValueError, match="alternatives"):
        WordNgrams(by_target=True, cross_target_words=2).fit(sentences)


def test_target_cues_on_targets_sharing_no_word_say_why_not_empty_vocabulary():
    import pandas as pd

    one_topic = pd.DataFrame(
        {
            "text": ["Uniforms erase choice", "Uniforms end teasing"],
            "target": ["school uniform"] * 2,
        }
    )
    with pytest.raises(ValueError, match=r"the 1 target\(s\) here \('school uniform'\) share none"):
        WordNgrams(cross_target_words=2).fit(one_topic)
    assert WordNgrams(cross_target_words=1).fit(one_topic).target_cues_ == ("school", "uniform")


def test_document_frequency_counts_each_distinct_text_once():
    # One text paired with forty targets (an FNC-1 body with forty headlines) must not
    # look forty times as common as a text that occurs once.
    frame = pd.DataFrame(
        {
            "text": ["strikes escalate"] * 40 + ["strikes deter"],
            "target": [f"h{i}" for i in range(41)],
        }
    )
    step = WordNgrams(ngram_range=(1, 1)).fit(frame)
    idf = dict(zip(step.get_feature_names_out(), step.tfidf_.idf_))
    assert idf["escalate"] == idf["deter"] > idf["strikes"]


def test_words_never_seen_in_training_give_an_empty_row(sentences):
    step = WordNgrams().fit(sentences)
    assert (
        step.transform(pd.DataFrame({"text": ["zyzzyva quokka"], "target": ["carbon tax"]})).nnz
        == 0
    )


def test_transform_keeps_row_order_and_repeats(sentences):
    step = WordNgrams().fit(sentences)
    reordered = sentences.iloc[[3, 0, 3]].reset_index(drop=True)
    rows = step.transform(reordered).toarray()
    assert (rows[0] == rows[2]).all()
    assert (rows[1] == step.transform(sentences.iloc[[0]]).toarray()[0]).all()


def test_target_ngrams_read_the_target_column():
    frame = pd.DataFrame(
        {"text": ["irrelevant words"] * 2, "target": ["We should ban whaling", "Whaling is cruel"]}
    )
    names = TargetNgrams(ngram_range=(1, 1)).fit(frame).get_feature_names_out().tolist()
    assert "whaling" in names and "irrelevant" not in names


@pytest.mark.parametrize("step", [WordNgrams(ngram_range=(2, 1)), CharNgrams(ngram_range=(0, 3))])
def test_an_impossible_ngram_range_is_refused(sentences, step):
    with pytest.raises(ValueError, match="ngram_range must satisfy 1 <= low <= high"):
        step.fit(sentences)


def test_char_ngrams_name_the_analyzers_they_accept(sentences):
    with pytest.raises(ValueError, match="'char_wb' or 'char'"):
        CharNgrams(analyzer="word").fit(sentences)


def test_char_ngrams_inside_word_boundaries_do_not_span_two_words():
    frame = pd.DataFrame({"text": ["no war"], "target": ["t"]})
    within = set(CharNgrams(ngram_range=(3, 3)).fit(frame).get_feature_names_out())
    across = set(CharNgrams(ngram_range=(3, 3), analyzer="char").fit(frame).get_feature_names_out())
    assert "o w" in across and "o w" not in within
    assert " no" in within


def test_char_ngrams_lowercase_unless_told_not_to():
    frame = pd.DataFrame({"text": ["NATO"], "target": ["t"]})
    assert "na" in CharNgrams(ngram_range=(2, 2)).fit(frame).get_feature_names_out()
    assert (
        "NA" in CharNgrams(ngram_range=(2, 2), lowercase=False).fit(frame).get_feature_names_out()
    )
