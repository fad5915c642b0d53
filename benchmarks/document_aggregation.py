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


def document_labels(predicted: pd.DataFrame, built, rule: str, presence: float) -> list[str]:
    return [
        docs.aggregate(predicted.iloc[rows], LABELS, rule, presence)["label"] for _, rows in built
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
    results = {}
    for split in ("valid", "test"):
        tweets = rows[rows["split"] == split].reset_index(drop=True)
        predicted = model.predict(tweets)
        built = pseudo_documents(tweets, seed)
        gold = [stance for stance, _ in built]
        results[split] = {
            "mean": scores(gold, document_labels(predicted, built, "mean", 0)),
            "majority": scores(gold, document_labels(predicted, built, "majority", 0)),
        }
        for presence in PRESENCES:
            labels = document_labels(predicted, built, "stance", presence)
            results[split][f"stance {presence:.2f}"] = scores(gold, labels)
    stance_rules = [name for name in results["valid"] if name.startswith("stance")]
    chosen = max(stance_rules, key=lambda name: results["valid"][name]["macro_f1"])
    lines = [
        f"Pseudo-documents of SemEval-2016 tweets, sentences by {model_uri} "
        f"({len(built)} documents per split, seed {seed}); the stance threshold chosen on "
        f"validation: {chosen.split()[1]}",
        "",
        "| rule | valid macro-F1 | valid F_avg | test macro-F1 | test F_avg |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("mean", "majority", chosen):
        v, t = results["valid"][name], results["test"][name]
        lines.append(
            f"| {name} | {v['macro_f1']:.2f} | {v['f_avg']:.2f} | {t['macro_f1']:.2f} | "
            f"{t['f_avg']:.2f} |"
        )
    curve = ", ".join(
        f"{name.split()[1]}: {results['valid'][name]['macro_f1']:.1f}" for name in stance_rules
    )
    lines += ["", f"Validation macro-F1 of `stance` by threshold: {curve}", ""]
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
        found[doc_id] = model.predict(frame)
    for rule in docs.AGGREGATIONS:
        cells = []
        for doc_id, known in ARTICLE_STANCE.items():
            label = docs.aggregate(found[doc_id], model.labels, rule, presence)["label"]
            cells.append(f"{label} ({'right' if label == known else 'wrong'}, {known})")
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
