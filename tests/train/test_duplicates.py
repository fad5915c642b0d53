import tomllib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from train.config import Config
from train.crossval import folds
from train.data import split_dataset
from train.duplicates import copy_groups, repeated_texts, text_key

REPO = Path(__file__).resolve().parents[2]
SAMPLE = pd.read_csv(REPO / "data" / "sample" / "sentences.csv")
SPLIT = Config.from_layers(tomllib.loads((REPO / "experiments" / "sample.toml").read_text())).split


def _rows(texts: list[str], labels: list[str], targets=None) -> pd.DataFrame:
    targets = "Iran's missile strikes" if targets is None else targets
    return pd.DataFrame(
        {
            "id": [str(i) for i in range(len(texts))],
            "text": texts,
            "target": targets,
            "label": labels,
            "weight": 1.0,
            "split": None,
            "group": targets,
        }
    )


@pytest.mark.parametrize(
    "variant",
    [
        "IRAN'S STRIKES WERE A MEASURED REPLY.",
        "Iran's   strikes\twere a measured reply !!",
        "Iran’s strikes were a measured reply?!",  # a typographic apostrophe
        "Iran's strikes were a measured reply 🚀👍🏽",
        "Iran's strikes were a measured reply\ufe0f❤️ https://t.co/AbC123",
        "@newsdesk Iran's strikes were a measured reply",
        "Ｉｒａｎ's strikes were a measured reply.",  # full-width letters
    ],
)
def test_a_variant_in_case_spacing_punctuation_emoji_url_or_mention_has_the_same_key(variant):
    assert text_key(variant) == text_key("Iran's strikes were a measured reply.")


def test_texts_of_only_punctuation_or_emoji_are_not_copies_of_each_other():
    assert text_key("!!!") != text_key("🚀🚀") and text_key("!!!") == text_key(" !!! ")


def test_a_near_copy_joins_its_text_and_an_unrelated_text_does_not():
    texts = [
        "The minister said on Tuesday that the strikes on the bases were a measured reply.",
        "The minister said on Monday that the strikes on the bases were a measured reply.",
        "Sanctions have failed to change the government's course in a decade.",
    ]
    first, codes = copy_groups(texts)
    assert list(codes) == [0, 0, 1] and list(first) == [0, 2]
    assert list(copy_groups(texts, near=False)[1]) == [0, 1, 2]


def test_the_punctuation_variants_of_the_finding_stay_in_one_split_and_are_counted():
    # The finding: "... strikes." and "... strikes !!" were split apart, so test scored
    # memory; 30 % of the sample's rows repeated, each with its punctuation changed.
    repeated = SAMPLE.sample(frac=0.3, random_state=7)
    variants = repeated["sentence"].str.rstrip(".!?") + " !!"
    rows = _rows(
        SAMPLE["sentence"].tolist() + variants.tolist(),
        SAMPLE["stance"].tolist() + repeated["stance"].tolist(),
        SAMPLE["target"].tolist() + repeated["target"].tolist(),
    )
    splits = split_dataset(rows, SPLIT, seed=13)
    home = {}
    for name, frame in splits.items():
        for key in map(text_key, frame["text"]):
            home.setdefault(key, set()).add(name)
    assert all(len(names) == 1 for names in home.values())
    counts = repeated_texts(splits)
    assert counts["repeated_text_rows"] >= len(repeated)
    assert counts["test_rows_with_a_train_text"] == counts["valid_rows_with_a_train_text"] == 0


def test_rows_shared_by_a_dataset_s_own_splits_are_counted_with_near_copies():
    train = _rows(
        ["The strikes were a measured reply to the killing of a general.", "Sanctions failed."],
        ["FAVOR", "AGAINST"],
    )
    test = _rows(
        ["The strikes were a measured reply to the killing of the general!", "Unrelated."],
        ["FAVOR", "NONE"],
    )
    counts = repeated_texts({"train": train, "valid": train.iloc[0:0], "test": test})
    assert counts["test_rows_with_a_train_text"] == 1
    assert counts["near_copy_rows"] == 2 and counts["repeated_text_rows"] == 0


_EMOJI = ["🚀", "👍🏽", "❤️", "🇮🇷", "🙄", "\u2764\ufe0f"]


@st.composite
def _variant(draw, text: str) -> str:
    """``text`` with some of: its case changed, its spacing changed, punctuation added or
    removed, emoji, a URL or a mention."""
    if draw(st.booleans()):
        text = draw(st.sampled_from([str.upper, str.lower, str.title, str.swapcase]))(text)
    if draw(st.booleans()):
        space = draw(st.sampled_from(["  ", "\t", " \n ", "\u00a0", "\u3000"]))
        text = space.join(text.split(" ")) + draw(st.sampled_from(["", " ", "\n"]))
    if draw(st.booleans()):
        text = text.rstrip(".!?") + draw(st.sampled_from(["", "!!", " ?!", "...", " …", ";", " -"]))
    if draw(st.booleans()):
        text = text.replace(",", draw(st.sampled_from(["", " ,", ";"])))
    if draw(st.booleans()):
        text += " " + "".join(draw(st.lists(st.sampled_from(_EMOJI), min_size=1, max_size=3)))
    if draw(st.booleans()):
        slug = draw(st.text("abcdefXYZ0123456789", min_size=4, max_size=10))
        text += draw(st.sampled_from([" https://t.co/", " http://example.org/a?b=", " www."]))
        text += slug
    if draw(st.booleans()):
        handle = draw(st.text("abcdefghij_0123", min_size=2, max_size=12))
        text = f"@{handle} {text}" if draw(st.booleans()) else f"{text} @{handle}"
    return text


@st.composite
def _data_with_variants(draw) -> pd.DataFrame:
    """The sample plus variants of some of its sentences; each row's ``origin`` is the sample
    row it was made from (not found by key, so that a key that missed a variant shows)."""
    picks = draw(st.lists(st.integers(0, len(SAMPLE) - 1), min_size=20, max_size=80, unique=True))
    texts, labels = SAMPLE["sentence"].tolist(), SAMPLE["stance"].tolist()
    targets, origins = SAMPLE["target"].tolist(), list(range(len(SAMPLE)))
    for index in picks:
        for _ in range(draw(st.integers(1, 3))):
            texts.append(draw(_variant(SAMPLE["sentence"].iloc[index])))
            labels.append(SAMPLE["stance"].iloc[index])
            targets.append(SAMPLE["target"].iloc[index])
            origins.append(index)
    return _rows(texts, labels, targets).assign(origin=origins)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_data_with_variants(), seed=st.integers(0, 2**31))
def test_no_variant_of_a_training_text_crosses_into_valid_or_test(rows, seed):
    splits = split_dataset(rows, SPLIT, seed)
    homes = {}
    for name, frame in splits.items():
        for origin in frame["origin"]:
            homes.setdefault(origin, set()).add(name)
    assert {origin: names for origin, names in homes.items() if len(names) > 1} == {}
    assert sum(len(frame) for frame in splits.values()) == len(rows)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_data_with_variants(), seed=st.integers(0, 2**31))
def test_no_variant_of_a_text_is_in_two_cv_folds(rows, seed):
    for train_rows, held_rows in folds(rows, 5, "none", seed):
        assert not set(rows["origin"].iloc[train_rows]) & set(rows["origin"].iloc[held_rows])


def _jaccard(a: str, b: str) -> float:
    grams = [{key[i : i + 5] for i in range(max(1, len(key) - 4))} for key in map(text_key, (a, b))]
    return len(grams[0] & grams[1]) / len(grams[0] | grams[1])


def test_near_copies_are_checked_on_their_exact_grams_and_do_not_depend_on_row_order():
    # Found in review: a 32-hash estimate joined texts of true similarity 0.5 into one group of
    # 691 rows, missed pairs at 0.8-0.85, and gave other groups when the rows were shuffled.
    import numpy as np

    rng = np.random.default_rng(5)
    words = "strike base missile general reply answer region troops drone sanction".split()
    opening = "the committee reviewed the evidence on the events of that week and concluded"
    texts = [f"{opening} {' '.join(rng.choice(words, 10))} case {i}" for i in range(400)]
    planted = [f"{texts[i]} indeed" for i in range(0, 400, 20)]  # one word more: J > 0.8
    every = texts + planted
    _, codes = copy_groups(every)
    for i, text in zip(range(0, 400, 20), planted):
        assert codes[i] == codes[400 + i // 20], _jaccard(texts[i], text)
    joined = [
        (a, b) for a in range(len(every)) for b in range(a + 1, len(every)) if codes[a] == codes[b]
    ]
    assert all(_jaccard(every[a], every[b]) >= 0.8 for a, b in joined[:2000] if b - a != 0)
    order = rng.permutation(len(every))
    _, shuffled = copy_groups([every[i] for i in order])
    same = {(codes[order[x]], shuffled[x]) for x in range(len(every))}
    assert len(same) == len(set(codes)) == len(set(shuffled))
