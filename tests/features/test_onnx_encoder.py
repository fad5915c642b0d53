"""The encoder on onnxruntime against the numpy reference, and the cache of its graph."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import onnx_encoder
from features.cache import file_sha256
from features.embeddings import SentenceEmbeddings, _encoder

pytestmark = pytest.mark.usefixtures("embeddings_extra")

SENTENCES = [
    "The council should fund the new tram line.",
    "Building the tram is a waste of public money!",
    "#StopTheTram rally at noon, bring signs",
    "Iran's strikes were a measured answer to an attack on its embassy.",
    "Nobody who has read the report can call this proportionate.",
    "ok",
    "A much longer sentence that keeps going, clause after clause, so that the batch holds "
    "texts of very different lengths and padding has to be masked out properly.",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return _encoder(128)._encode_both(SENTENCES)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row and per pooling (mean, [CLS]): both halves are unit vectors."""
    return (a.reshape(len(a), 2, -1) * b.reshape(len(b), 2, -1)).sum(axis=2)


def test_the_full_precision_graph_gives_the_reference_vectors(reference):
    # The graph's fused GELU takes the reference's tanh form, so only summation order differs.
    found = _encoder(128)._encode_both(SENTENCES, runtime="onnx")
    assert cosines(found, reference).min() > 0.99999


def test_int8_stays_close_to_the_reference(reference):
    found = _encoder(128)._encode_both(SENTENCES, runtime="onnx-int8")
    values = cosines(found, reference)
    assert values.mean() >= 0.99
    # The two-piece "ok" is the worst case (0.979): with so few tokens, rounding shows.
    assert values.min() >= 0.97


def test_the_step_takes_a_runtime_and_refuses_an_unknown_one(sentences):
    step = SentenceEmbeddings(runtime="onnx-int8").fit(sentences)
    restored = pickle.loads(pickle.dumps(step))
    np.testing.assert_array_equal(
        restored.transform(sentences).toarray(), step.transform(sentences).toarray()
    )
    with pytest.raises(ValueError, match="runtime must be one of"):
        SentenceEmbeddings(runtime="torch").fit(sentences)


def test_a_model_saved_before_the_runtime_parameter_still_transforms(sentences):
    step = SentenceEmbeddings().fit(sentences)
    del step.__dict__["runtime"]  # as a model file written by an earlier version
    restored = pickle.loads(pickle.dumps(step))
    assert restored.transform(sentences.iloc[:2]).shape == (2, 384)


def test_a_damaged_graph_file_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("STANCE_CACHE_DIR", str(tmp_path))
    encoder = _encoder(128)
    path = onnx_encoder.model_file(encoder, "fp32")
    built = path.stat().st_mtime_ns
    assert onnx_encoder.model_file(encoder, "fp32").stat().st_mtime_ns == built  # reused
    path.write_bytes(path.read_bytes()[:-16])
    rebuilt = onnx_encoder.model_file(encoder, "fp32")
    assert rebuilt == path and file_sha256(path) == path.with_suffix(".sha256").read_text()


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        onnx_encoder.model_file(_encoder(128), "int4")


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_a_text_s_vector_does_not_depend_on_the_texts_batched_with_it(runtime):
    # Before, int8 scaled a whole batch by its largest activation and onnxruntime pooled in an
    # order set by the batch's shape: a sentence's vector moved with the rest of its file.
    encoder = _encoder(128)
    alone = np.vstack([encoder._encode_both([text], runtime=runtime) for text in SENTENCES])
    for size in (2, 3, 7):
        for start in range(0, len(SENTENCES), size):
            texts = (SENTENCES[start:] + SENTENCES[:start])[:size]
            found = encoder._encode_both(texts, batch_size=size, runtime=runtime)
            expected = np.vstack([alone[SENTENCES.index(text)] for text in texts])
            np.testing.assert_array_equal(found, expected, err_msg=f"{runtime}, {texts}")
    frame = pd.DataFrame({"text": SENTENCES, "target": ["tram"] * len(SENTENCES)})
    assert SentenceEmbeddings(runtime=runtime).fit(frame).transform(frame).shape == (7, 384)


def test_int8_weights_leave_the_16_bit_sums_of_avx2_kernels_unsaturated(tmp_path, monkeypatch):
    # A kernel without VNNI adds pairs of uint8 x int8 products in 16 bits, saturating above
    # 32,767; with weights within 63, two products reach 2 * 255 * 63 = 32,130 at most, so the
    # integer products are exact, as VNNI's are.
    import onnx
    from onnx import numpy_helper

    monkeypatch.setenv("STANCE_CACHE_DIR", str(tmp_path))
    graph = onnx.load(str(onnx_encoder.model_file(_encoder(128), "int8"))).graph
    levels = [
        numpy_helper.to_array(tensor)
        for tensor in graph.initializer
        if tensor.data_type == onnx.TensorProto.INT8
    ]
    assert len(levels) == 4 * len(_encoder(128).layers)
    assert max(int(np.abs(level.astype(np.int32)).max()) for level in levels) == 63
    assert {node.op_type for node in graph.node} >= {"QuantizeLinear", "MatMulIntegerToFloat"}


def test_no_graph_node_rounds_differently_by_instruction_set():
    # onnxruntime's Softmax sums in vector lanes as wide as the CPU's, and ReduceSum in an order
    # set by the padded width; the graph spells softmax with nodes that do neither.
    import onnx

    for precision in onnx_encoder.PRECISIONS:
        graph = onnx.load(str(onnx_encoder.model_file(_encoder(128), precision))).graph
        assert {"Softmax", "ReduceSum"}.isdisjoint(node.op_type for node in graph.node)


def test_a_cpu_without_avx_512_computes_the_same_vectors_bit_for_bit(tmp_path, x86_emulator):
    # Before, softmax's rounding on AVX2 moved int8 vectors by up to 0.013: the same model
    # scored differently on a colleague's machine. Emulated, as the only CPU here has AVX-512.
    script = (
        "import sys, numpy as np\n"
        "from features.embeddings import _encoder\n"
        "texts = sys.argv[2:]\n"
        "np.save(sys.argv[1], np.stack([_encoder(128)._encode_both(texts, runtime=r)"
        " for r in ('onnx', 'onnx-int8')]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    here = np.stack(
        [_encoder(128)._encode_both(SENTENCES, runtime=r) for r in ("onnx", "onnx-int8")]
    )  # builds the graphs, so that the slow emulated run only loads them
    env = {**os.environ, "PYTHONPATH": str(root), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [*x86_emulator, sys.executable, "-c", script, str(tmp_path / "there.npy"), *SENTENCES],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    there = np.load(tmp_path / "there.npy")
    np.testing.assert_array_equal(there[1], here[1], err_msg="int8")
    np.testing.assert_array_equal(there[0], here[0], err_msg="fp32")
