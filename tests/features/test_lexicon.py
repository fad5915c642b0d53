"""The VADER sentiment step."""

import importlib.util
import pickle
import re
import sys

import pandas as pd
import pytest

from features import SentimentLexicon, lexicon

NAMES = [
    "pos",
    "neg",
    "neu",
    "compound_pos",
    "compound_neg",
    "n_positive_words",
    "n_negative_words",
]


def raw_values(texts):
    """The step's values before its per-column scaling, fitted on the texts themselves."""
    frame = pd.DataFrame({"text": texts, "target": "t"})
    step = SentimentLexicon().fit(frame)
    return pd.DataFrame(
        step.transform(frame).toarray() * step.scale_, columns=step.get_feature_names_out()
    )


def test_columns_are_named():
    frame = pd.DataFrame({"text": ["fine"], "target": ["t"]})
    assert SentimentLexicon().fit(frame).get_feature_names_out().tolist() == NAMES


def test_compound_score_is_split_by_sign():
    values = raw_values(
        [
            "A wonderful and brave decision",
            "A disgraceful, cruel failure",
            "The session starts at noon",
        ]
    )
    assert values["compound_pos"][0] > 0 and values["compound_neg"][0] == 0
    assert values["compound_neg"][1] > 0 and values["compound_pos"][1] == 0
    assert values.loc[2, ["compound_pos", "compound_neg", "pos", "neg"]].sum() == 0
    assert (values.to_numpy() >= 0).all()


def test_negation_turns_the_compound_score():
    values = raw_values(["This plan is good", "This plan is not good"])
    assert values["compound_pos"][0] > 0
    assert values["compound_neg"][1] > 0


def test_lexicon_words_are_counted_through_punctuation_and_case():
    values = raw_values(["Great, WONDERFUL, awful!"])
    assert values["n_positive_words"][0] == 2
    assert values["n_negative_words"][0] == 1


def test_pickle_leaves_the_lexicon_behind(sentences):
    step = SentimentLexicon().fit(sentences)
    payload = pickle.dumps(step)
    assert len(payload) < 10_000, (
        "the 7,500-word lexicon ships with the package and must not be pickled"
    )
    restored = pickle.loads(payload)
    assert (restored.transform(sentences) != step.transform(sentences)).nnz == 0


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    # A second copy of the module, so the class the other tests use stays as it is.
    spec = importlib.util.spec_from_file_location("lexicon_copy", lexicon.__file__)
    with pytest.raises(ImportError, match=re.escape("python3 -m uv sync --frozen")):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
