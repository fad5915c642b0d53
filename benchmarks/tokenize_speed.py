"""Tokenizing and counting speed of the word step's three routes, on one core (issue: speed).

Run on demand, not in the test suite:

    STANCE_DATA_DIR=../shared/data uv run python benchmarks/tokenize_speed.py --rows 200000

Over rows of distinct texts (ArgQ arguments joined with the first words of another, as
predict_speed.py builds them), in batches of 10,000, medians of ``--repeats``:

1. ``python re``: ``re.findall`` per text (``Tokenizer._split_text``), the reference.
2. ``arrow split``: the batch split by pyarrow's RE2 kernels into Python lists
   (``Tokenizer._split_texts``, what ``Tokenizer.many`` uses).
3. ``arrow flat``: the batch's tokens left in one Arrow array with their rows
   (``Tokenizer.flat``), no Python string per token.

Then the word 1-2-gram model's counting (``GramIndex``) from lists against from the flat array,
and the character 2-5-gram step (``CharNgrams``, as the sample and accurate experiments use it)
counted by scikit-learn's ``char_wb`` analyzer against by character keys (``CharGramIndex``).
Every route is checked to give the same tokens and the same counts before it is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speed_tiers import distinct_rows  # noqa: E402

from features.gramindex import GramIndex  # noqa: E402
from features.ngrams import CharNgrams, WordNgrams, _TfidfNgrams  # noqa: E402
from features.text import Tokenizer  # noqa: E402
from train.sources import data_root  # noqa: E402

BATCH = 10_000


def argq_texts(rows: int) -> list[str]:
    frame = pd.read_csv(data_root() / "ibm-argq-30k" / "arg_quality_rank_30k.csv", dtype=str)
    return distinct_rows(list(frame["argument"]), list(frame["topic"]), rows)["text"].tolist()


def median_seconds(work, batches, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            work(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    texts = argq_texts(args.rows)
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    tokenizer = Tokenizer()
    step = WordNgrams(ngram_range=(1, 2)).fit(pd.DataFrame({"text": texts[: args.rows // 2]}))
    index: GramIndex = step._gram_index()
    chars = CharNgrams(ngram_range=(2, 5), min_df=2).fit(
        pd.DataFrame({"text": texts[: args.rows // 2]})
    )
    if chars._char_index() is None:
        raise SystemExit("the character step's vocabulary cannot be keyed")

    for batch in batches[:2]:  # the routes must agree before any is timed
        reference = list(map(tokenizer._split_text, batch))
        if tokenizer._split_texts(batch) != reference:
            raise SystemExit("the Arrow split differs from re.findall")
        tokens, rows = tokenizer.flat(batch)
        lists = [split for split, _ in reference]
        if (index.count(lists, None) != index.count_flat(tokens, rows, len(batch), None)).nnz:
            raise SystemExit("counting from the flat array differs from counting from lists")
        if (chars._count(batch) != _TfidfNgrams._count(chars, batch)).nnz:
            raise SystemExit("character keys count otherwise than the char_wb analyzer")

    routes = {
        "python re": lambda batch: list(map(tokenizer._split_text, batch)),
        "arrow split": tokenizer._split_texts,
        "arrow flat": tokenizer.flat,
        "python re + count": lambda batch: index.count(
            [split for split, _ in map(tokenizer._split_text, batch)], None
        ),
        "arrow flat + count": lambda batch: index.count_flat(
            *tokenizer.flat(batch), len(batch), None
        ),
        "char 2-5, analyzer": lambda batch: _TfidfNgrams._count(chars, batch),
        "char 2-5, character keys": chars._count,
    }
    seconds = {name: median_seconds(work, batches, args.repeats) for name, work in routes.items()}
    print(
        f"{len(texts):,} distinct texts, batches of {BATCH:,}, one core, medians of {args.repeats}"
    )
    print("| route | rows/s | x python re |")
    print("| --- | ---: | ---: |")
    for name, value in seconds.items():
        base = seconds[
            "char 2-5, analyzer"
            if name.startswith("char")
            else "python re + count"
            if "count" in name
            else "python re"
        ]
        print(f"| {name} | {len(texts) / value:,.0f} | {base / value:.2f} |")


if __name__ == "__main__":
    main()
