"""The MiniLM encoder's speed and agreement on each runtime: numpy (the reference), onnxruntime
full precision and int8, one thread each (as in every ``--jobs`` worker), on distinct ArgQ
arguments. Medians of ``--repeats`` passes, alternating runtimes; ratios within this run.

    STANCE_DATA_DIR=../shared/data python3 -m uv run --frozen --all-extras \
        python benchmarks/encoder_speed.py --texts 1500 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.embeddings import DIMENSION, RUNTIMES, _encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(os.environ.get("STANCE_DATA_DIR", "data"))
    frame = pd.read_csv(root / "ibm-argq-30k" / "arg_quality_rank_30k.csv")
    texts = list(dict.fromkeys(frame["argument"].astype(str)))[: args.texts]
    encoder = _encoder(128)
    seconds = {runtime: [] for runtime in RUNTIMES}
    vectors = {}
    with threadpool_limits(1):
        for runtime in RUNTIMES:  # builds and caches the graphs before anything is timed
            encoder._encode_both(texts[:8], runtime=runtime)
        for _ in range(args.repeats):
            for runtime in RUNTIMES:
                started = time.perf_counter()
                vectors[runtime] = encoder._encode_both(texts, runtime=runtime)
                seconds[runtime].append(time.perf_counter() - started)
    base = statistics.median(seconds["numpy"])
    print(f"{len(texts)} distinct texts, one thread, median of {args.repeats}")
    print("| runtime | texts/s | x numpy | cosine to numpy, mean (min) |")
    print("| --- | ---: | ---: | --- |")
    for runtime, runs in seconds.items():
        median = statistics.median(runs)
        mean = (vectors[runtime][:, :DIMENSION] * vectors["numpy"][:, :DIMENSION]).sum(axis=1)
        print(
            f"| {runtime} | {len(texts) / median:,.0f} | {base / median:.2f} | "
            f"{np.mean(mean):.4f} ({np.min(mean):.4f}) |"
        )


if __name__ == "__main__":
    main()
