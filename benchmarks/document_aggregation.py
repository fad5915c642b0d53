"""Which rule turns sentence predictions into a document's stance best: the mean probability,
the majority label, or sentences weighted by the stance they carry (``stance``)?

Documents whose stance is known honestly are scarce, so two kinds are scored:

1. Pseudo-documents of SemEval-2016 tweets, built per target and seeded: a FAVOR (AGAINST)
   document has 2 to 6 tweets labelled FAVOR (AGAINST), with probability one half one tweet of
   the other side, and neutral (NONE) tweets up to 10 in all, as an opinion piece mixes its
   argument with reporting; a NONE document has 10 NONE tweets. 40 documents per target and
   stance, drawn from one split's tweets (with replacement across documents, never within
   one); a target and stance with fewer than 6 such tweets in the split gives none. The
   ``stance`` rule's threshold (``documents.STANCE_PRESENCE``) is chosen on
   documents of validation tweets; the rules are then compared on documents of test tweets.
   A second set, "with quotes", gives each document what opinion articles have: 1 to 3 tweets
   of the other side (of either side, for a NONE document) quoted and attributed ("Critics
   said: “...”"), and its sentences in a seeded random order. The ``framing`` rule's weights
   (``documents.QUOTED_WEIGHT``, ``EDGE_WEIGHT``) are chosen on its validation documents.
2. The two articles in ../shared/documents, whose stances toward Iran's missile strikes are
   known (000_...: FAVOR, it defends the strikes; 004_...: AGAINST, it condemns them).

    STANCE_DATA_DIR=../shared/data MLFLOW_TRACKING_URI=sqlite:///STORE python3 -m uv run \\
        --frozen --all-extras python benchmarks/document_aggregation.py \\
        --semeval-model runs:/RUN/model --article-model runs:/RUN/model
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from train import documents as docs
from train.artifact import open_model
from train.config import Config
from train.data import load_dataset
from train.metrics import compute_metrics
from train.sources import data_root

REPO = Path(__file__).resolve().parents[1]
ARTICLES = REPO.parent / "shared" / "documents"
ARTICLE_STANCE = {"000_6af2f53257072701": "FAVOR", "004_d1cfd201634334d8": "AGAINST"}
LABELS = ("FAVOR", "AGAINST", "NONE")
PER_TARGET, SIZE = 40, 10
PRESENCES = tuple(round(x, 2) for x in np.arange(0.2, 0.81, 0.05))
QUOTED_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)
EDGE_WEIGHTS = (1.0, 2.0, 3.0)
SPEAKERS = ("Critics said", "A spokesman said", "Its opponents argued", "One reader wrote")


def with_quotes(tweets: pd.DataFrame, built, seed: int) -> tuple[pd.DataFrame, list]:
    """``tweets`` followed by an attributed quotation of each, and each document of ``built``
    with 1 to 3 quoted tweets of the other side (either side for NONE), its sentences shuffled:
    (gold stance, positions in the returned frame)."""
    rng = np.random.default_rng(seed + 1)
    quoted = tweets.assign(
        text=[f"{SPEAKERS[i % len(SPEAKERS)]}: “{t}”" for i, t in enumerate(tweets["text"])]
    )
    both = pd.concat([tweets, quoted], ignore_index=True)
    offset = len(tweets)
    documents = []
    for stance, rows in built:
        target = tweets["target"].iloc[rows[0]]
        own = tweets.index[tweets["target"] == target]
        sides = {"FAVOR": ("AGAINST",), "AGAINST": ("FAVOR",), "NONE": ("FAVOR", "AGAINST")}
        pool = own[tweets["label"].iloc[own].isin(sides[stance]).to_numpy()].to_numpy()
        picked = rng.choice(pool, min(len(pool), int(rng.integers(1, 4))), replace=False)
        order = np.concatenate([rows, picked + offset])
        documents.append((stance, rng.permutation(order)))
    return both, documents


def pseudo_documents(tweets: pd.DataFrame, seed: int) -> list[tuple[str, np.ndarray]]:
    """(gold stance, row positions in ``tweets``) per pseudo-document; see the module docstring."""
    rng = np.random.default_rng(seed)
    built = []
    for target in sorted(tweets["target"].unique()):
        own = tweets[tweets["target"] == target]
        by_label = {label: own.index[own["label"] == label].to_numpy() for label in LABELS}
        for stance in LABELS:
            if len(by_label[stance]) < 6 or len(by_label["NONE"]) < SIZE:
                continue  # too few tweets to vary the documents (climate's 2 AGAINST in valid)
            for _ in range(PER_TARGET):
                if stance == "NONE":
                    rows = rng.choice(by_label["NONE"], SIZE, replace=False)
                else:
                    other = "AGAINST" if stance == "FAVOR" else "FAVOR"
                    arguing = rng.choice(by_label[stance], rng.integers(2, 7), replace=False)
                    conceding = rng.choice(by_label[other], int(rng.random() < 0.5), replace=False)
                    neutral = rng.choice(
                        by_label["NONE"], SIZE - len(arguing) - len(conceding), replace=False
                    )
                    rows = np.concatenate([arguing, conceding, neutral])
                built.append((stance, rows))
    return built


def document_labels(predicted: pd.DataFrame, built, rule: str, presence: float, **weights):
    return [
        docs.aggregate(predicted.iloc[rows], LABELS, rule, presence, **weights)["label"]
        for _, rows in built
    ]


def scores(gold: list[str], labels: list[str]) -> dict[str, float]:
    metrics = compute_metrics(gold, labels, LABELS)
    return {"macro_f1": 100 * metrics["macro_f1"], "f_avg": 100 * metrics["f_avg"]}


def semeval(model_uri: str, seed: int) -> list[str]:
    model = open_model(model_uri).model
    config = Config.from_layers(
        {
            "data": {
                "format": "semeval2016",
                "path": "semeval2016-tweeteval",
                "on_bad_rows": "quarantine",
            }
        }
    )
    rows = load_dataset(config.data, data_root()).rows
    results, quoted_results = {}, {}
    for split in ("valid", "test"):
        tweets = rows[rows["split"] == split].reset_index(drop=True)
        built = pseudo_documents(tweets, seed)
        both, quoted_built = with_quotes(tweets, built, seed)
        predicted = model.predict(both).assign(text=both["text"].to_numpy())
        for found, documents in ((results, built), (quoted_results, quoted_built)):
            gold = [stance for stance, _ in documents]
            found[split] = {
                "mean": scores(gold, document_labels(predicted, documents, "mean", 0)),
                "majority": scores(gold, document_labels(predicted, documents, "majority", 0)),
            }
            for presence in PRESENCES:
                labels = document_labels(predicted, documents, "stance", presence)
                found[split][f"stance {presence:.2f}"] = scores(gold, labels)
            for quoted in QUOTED_WEIGHTS:
                for edge in EDGE_WEIGHTS:
                    labels = document_labels(
                        predicted, documents, "framing", 0, quoted_weight=quoted, edge_weight=edge
                    )
                    found[split][f"framing {quoted:g}/{edge:g}"] = scores(gold, labels)

    def best(found, prefix):
        names = [name for name in found["valid"] if name.startswith(prefix)]
        # The first of equals: the smaller threshold, the smaller weights.
        return max(names, key=lambda name: found["valid"][name]["macro_f1"])

    lines = []
    for title, found in (("plain", results), ("with quotes", quoted_results)):
        chosen = [best(found, "stance"), best(found, "framing")]
        lines += [
            f"Pseudo-documents of SemEval-2016 tweets ({title}), sentences by {model_uri} "
            f"({len(built)} documents per split, seed {seed}); chosen on validation: "
            f"{', '.join(chosen)} (framing: quoted weight / edge weight)",
            "",
            "| rule | valid macro-F1 | valid F_avg | test macro-F1 | test F_avg |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name in ("mean", "majority", *chosen):
            v, t = found["valid"][name], found["test"][name]
            lines.append(
                f"| {name} | {v['macro_f1']:.2f} | {v['f_avg']:.2f} | {t['macro_f1']:.2f} | "
                f"{t['f_avg']:.2f} |"
            )
        grid = ", ".join(
            f"{name.split()[1]}: {found['valid'][name]['macro_f1']:.1f}"
            for name in found["valid"]
            if name.startswith("framing")
        )
        lines += ["", f"Validation macro-F1 of `framing` by weights: {grid}", ""]
    return lines


def articles(model_uri: str, presence: float) -> list[str]:
    model = open_model(model_uri).model
    lines = [f"The two articles, sentences by {model_uri}:", ""]
    lines += ["| rule | " + " | ".join(ARTICLE_STANCE) + " |", "| --- | --- | --- |"]
    found = {}
    for doc_id, file in docs.document_sources(ARTICLES):
        text, _ = docs.read_document(file)
        spans = docs.split_sentences(text)
        frame = pd.DataFrame(
            {"text": [text[a:b] for a, b in spans], "target": "Iran's missile strikes"}
        )
        found[doc_id] = model.predict(frame).assign(text=frame["text"])
    for rule in docs.AGGREGATIONS:
        cells = []
        for doc_id, known in ARTICLE_STANCE.items():
            row = docs.aggregate(found[doc_id], model.labels, rule, presence)
            label = row["label"]
            cells.append(
                f"{label} ({'right' if label == known else 'wrong'}, {known}; margin "
                f"{row['margin']:.3f})"
            )
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--semeval-model", action="append", default=[])
    parser.add_argument("--article-model", action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = []
    for uri in args.semeval_model:
        lines += semeval(uri, args.seed)
    for uri in args.article_model:
        lines += articles(uri, docs.STANCE_PRESENCE)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
