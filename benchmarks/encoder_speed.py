"""The MiniLM encoder's speed and agreement on each runtime: numpy (the reference), onnxruntime
full precision and int8, one thread each (as with ``stance predict --jobs 1``), on distinct ArgQ
arguments. Medians of ``--repeats`` passes, alternating runtimes; ratios within this run.

``--before FILE`` times a graph an earlier version built (its cached ``minilm-int8-*.onnx``)
the way that version ran it: ``--before-recipe v1`` (d4ef41a and before) in batches of 64 with
onnxruntime's default fusions, ``v2`` (3d0e18f) in batches of 32 without the skip-LayerNorm
fusion.

    STANCE_DATA_DIR=../shared/data python3 -m uv run --frozen --all-extras \
        python benchmarks/encoder_speed.py --texts 1500 --repeats 3 [--before FILE \
        --before-recipe v2]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features import onnx_encoder
from features.embeddings import DIMENSION, RUNTIMES, _encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", type=Path, help="an earlier version's int8 graph file")
    parser.add_argument("--before-recipe", choices=sorted(EARLIER_RUNS), default="v1")
    args = parser.parse_args()
    root = Path(os.environ.get("STANCE_DATA_DIR", "data"))
    frame = pd.read_csv(root / "ibm-argq-30k" / "arg_quality_rank_30k.csv")
    texts = list(dict.fromkeys(frame["argument"].astype(str)))[: args.texts]
    encoder = _encoder(128)
    routes = {
        runtime: functools.partial(encoder._encode_both, runtime=runtime) for runtime in RUNTIMES
    }
    if args.before:
        routes["int8 before"] = functools.partial(
            earlier_graph, encoder, args.before, args.before_recipe
        )
    seconds = {route: [] for route in routes}
    vectors = {}
    with threadpool_limits(1):
        for encode in routes.values():  # builds and caches the graphs before anything is timed
            encode(texts[:8])
        for _ in range(args.repeats):
            for route, encode in routes.items():
                started = time.perf_counter()
                vectors[route] = encode(texts)
                seconds[route].append(time.perf_counter() - started)
    base = statistics.median(seconds["numpy"])
    print(f"{len(texts)} distinct texts, one thread, median of {args.repeats}")
    before = statistics.median(seconds.get("int8 before", [np.nan]))
    print("| runtime | texts/s | x numpy | x int8 before | cosine to numpy, mean (min) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for runtime, runs in seconds.items():
        median = statistics.median(runs)
        mean = (vectors[runtime][:, :DIMENSION] * vectors["numpy"][:, :DIMENSION]).sum(axis=1)
        print(
            f"| {runtime} | {len(texts) / median:,.0f} | {base / median:.2f} | "
            f"{before / median:.2f} | {np.mean(mean):.4f} ({np.min(mean):.4f}) |"
        )


# How each earlier recipe ran its graph: texts per batch, onnxruntime fusions turned off.
EARLIER_RUNS = {"v1": (64, []), "v2": (32, ["SkipLayerNormFusion"])}


def earlier_graph(encoder, path: Path, recipe: str, texts: list[str]) -> np.ndarray:
    """``texts`` through an earlier version's graph file, run as that version ran it."""
    import onnxruntime

    batch, disabled = EARLIER_RUNS[recipe]
    if path not in _EARLIER:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        _EARLIER[path] = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )
    out = np.empty((len(texts), 2 * DIMENSION), dtype=np.float32)
    for rows, ids, mask in encoder._padded_batches(texts, batch):
        out[rows] = onnx_encoder.run(_EARLIER[path], ids, mask)
    return out


_EARLIER: dict[Path, object] = {}


if __name__ == "__main__":
    main()
