"""The surface-style step."""

import numpy as np
import pandas as pd
import pytest

from features import StyleFeatures


def raw_values(texts):
    """The step's values before its per-column scaling, fitted on the texts themselves."""
    frame = pd.DataFrame({"text": texts, "target": "t"})
    step = StyleFeatures().fit(frame)
    return pd.DataFrame(
        step.transform(frame).toarray() * step.scale_, columns=step.get_feature_names_out()
    )


def test_markers_are_counted_and_damped():
    values = raw_values(
        ["STOP this NOW!!! #NoWar @user says you won't https://t.co/x sooo wrong?"]
    ).iloc[0]
    expected = {
        "exclamations": 3,
        "questions": 1,
        "hashtags": 1,
        "mentions": 1,
        "urls": 1,
        "quotes": 0,
        "capitalized_words": 2,
        "elongated_words": 1,
        "first_person": 0,
        "second_person": 1,
    }
    for name, count in expected.items():
        assert values[name] == pytest.approx(np.log1p(count)), name


def test_capital_share_counts_letters_only():
    values = raw_values(["ABC def 123", "!!!", ""])
    assert values["capital_share"].tolist() == [0.5, 0.0, 0.0]
    assert values["log_length"][2] == 0.0


def test_columns_are_scaled_by_their_training_maximum():
    frame = pd.DataFrame({"text": ["Why?", "Why?? Why??"], "target": "t"})
    step = StyleFeatures().fit(frame)
    questions = step.get_feature_names_out().tolist().index("questions")
    assert step.transform(frame).toarray()[:, questions].max() == 1.0
    # A new text may pass the training maximum; the scale is not refitted.
    louder = pd.DataFrame({"text": ["Why????????"], "target": ["t"]})
    assert step.transform(louder).toarray()[0, questions] > 1.0
