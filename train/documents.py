"""Whole documents: sentence splitting with character offsets, and document-level stance.

Sentences are split with NLTK's Punkt using parameters set here (known
abbreviations, curly quotes), so no model is downloaded at run time.
"""

from __future__ import annotations

import functools
import re
import sys
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from train.errors import DataError
from train.tables import is_skipped_name

if TYPE_CHECKING:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

# Lower-case, without the final period, as Punkt stores them. Multi-period
# abbreviations ("u.s") are matched as one token by Punkt's word pattern.
ABBREVIATIONS = {
    # places and institutions
    "u.s",
    "u.k",
    "u.n",
    "e.u",
    "u.s.a",
    "u.a.e",
    "d.c",
    "n.y",
    "l.a",
    "st",
    "mt",
    "ft",
    "ave",
    "blvd",
    "co",
    "corp",
    "inc",
    "ltd",
    "dept",
    "univ",
    # titles and ranks
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "gen",
    "lt",
    "col",
    "maj",
    "capt",
    "sgt",
    "adm",
    "cmdr",
    "gov",
    "sen",
    "rep",
    "pres",
    "rev",
    "hon",
    "amb",
    # Latin and scholarly
    "e.g",
    "i.e",
    "etc",
    "vs",
    "cf",
    "al",
    "approx",
    "resp",
    "viz",
    "ca",
    "ibid",
    "no",
    "nos",
    "vol",
    "pp",
    "fig",
    "ed",
    "eds",
    # months and days
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
}


@functools.cache
def sentence_splitter() -> PunktSentenceTokenizer:
    """A Punkt tokenizer with this project's abbreviations; needs no NLTK data. Built on first
    use: importing NLTK takes 0.4 s, which `stance predict` on sentences need not spend."""
    from nltk.tokenize.punkt import PunktLanguageVars, PunktParameters, PunktSentenceTokenizer

    class NewsLanguageVars(PunktLanguageVars):
        # Curly and guillemet closing quotes may follow the period of a sentence end.
        sent_end_chars = (".", "?", "!")
        internal_punctuation = ",:;"

    class NewsSentenceTokenizer(PunktSentenceTokenizer):
        # Punkt keeps ASCII closing quotes and brackets with the sentence they end;
        # news text uses curly quotes too, so they are added here.
        _re_boundary_realignment = re.compile(r"[\"'’”»)\]}]+?(?:\s+|(?=--)|(?=—)|$)", re.MULTILINE)

    params = PunktParameters()
    params.abbrev_types = set(ABBREVIATIONS)
    return NewsSentenceTokenizer(params, lang_vars=NewsLanguageVars())


_PARAGRAPH = re.compile(r"\n\s*\n")
# Quoted speech often holds several sentences ("‘All is well! ... So far, so
# good!’"); a split inside it would cut the quote from its speaker, so spans
# are merged while a quotation is open. Caps runaway merges on unbalanced quotes.
MAX_SENTENCES_IN_QUOTE = 6


_QUOTE_MARK = re.compile('[“”«»‘’"]')


def _quote_marks(text: str, depth: int):
    """``(position, depth after it)`` for each quotation mark of ``text``, starting from
    ``depth``; only the marks are visited, so a long text without quotes costs one regex scan.

    ’ doubles as an apostrophe (Iran’s, countries’), so it closes a quote only
    when one is open and it is not between two letters.
    """
    for found in _QUOTE_MARK.finditer(text):
        i, ch = found.start(), found.group()
        if ch in "“«":
            depth += 1
        elif ch in "”»":
            depth = max(depth - 1, 0)
        elif ch == "‘":
            depth += i == 0 or not text[i - 1].isalnum()
        elif ch == "’":
            between_letters = (
                0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
            )
            depth -= bool(depth) and not between_letters
        else:  # '"'
            depth = depth - 1 if depth % 2 else depth + 1
        yield i, depth


def _quote_depth(text: str, depth: int) -> int:
    """Open-quotation depth after ``text``, starting from ``depth``."""
    last = depth
    for mark in _quote_marks(text, depth):
        last = mark[1]
    return last


def _merge_quoted(block: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged, depth, run = [], 0, 0
    for a, b in spans:
        if merged and depth and run < MAX_SENTENCES_IN_QUOTE:
            merged[-1] = (merged[-1][0], b)
            run += 1
        else:
            merged.append((a, b))
            run, depth = 1, 0
        depth = _quote_depth(block[a:b], depth)
    return merged


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of each sentence; ``text[start:end]`` is the sentence.

    Blank lines always end a sentence (headlines, datelines and quoted tweets
    stand on their own lines in articles), and Punkt splits within paragraphs.

    Examples
    --------
    >>> text = "Dr. Smith met U.S. officials. “It was tense,” she said."
    >>> [text[a:b] for a, b in split_sentences(text)]
    ['Dr. Smith met U.S. officials.', '“It was tense,” she said.']
    """
    spans = []
    position = 0
    for block in _PARAGRAPH.split(text) if text else []:
        start = text.index(block, position)
        position = start + len(block)
        for a, b in _merge_quoted(block, list(sentence_splitter().span_tokenize(block))):
            piece = block[a:b]
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece.rstrip())
            if trail > lead:
                spans.append((start + a + lead, start + a + trail))
    return spans


AGGREGATIONS = ("mean", "majority", "stance", "framing")
# The label a sentence carries when it takes no side; the ``stance`` rule weighs it apart.
NEUTRAL_LABEL = "NONE"
# ``stance``: a document takes a side when its sentences' mean probability of taking one
# (1 - P(NONE)) reaches this. Chosen on pseudo-documents of SemEval-2016 validation tweets
# (benchmarks/document_aggregation.py; benchmarks/RESULTS.md).
STANCE_PRESENCE = 0.6
# ``framing``: opinion articles quote and report the side they argue against, and state their
# own in the headline, the opening and the close. A sentence mostly inside quotation marks, or
# one that reports speech ("..., he said", "according to ..."), counts QUOTED_WEIGHT of a
# sentence; the first and the last count EDGE_WEIGHT. Chosen on pseudo-documents of SemEval-2016
# validation tweets with quoted tweets of the other side mixed in, as articles have them
# (benchmarks/document_aggregation.py; benchmarks/RESULTS.md).
QUOTED_WEIGHT = 0.0
EDGE_WEIGHT = 2.0
# Verbs of speech that are not also common nouns or adjectives ("states", "claims", "called"
# and "say" are left out: "the United States", "so-called", "I say" are the author's own).
REPORTED_SPEECH = re.compile(
    r"\b(?:said|says|told|according to|claimed|argued|insisted|warned|stated|declared|"
    r"tweeted|stressed|echoed)\b",
    re.IGNORECASE,
)


def aggregate(
    sentences: pd.DataFrame,
    labels: tuple[str, ...],
    rule: str,
    presence: float = STANCE_PRESENCE,
    quoted_weight: float = QUOTED_WEIGHT,
    edge_weight: float = EDGE_WEIGHT,
) -> dict:
    """One document-level row from its sentence rows.

    ``mean``: the label with the highest mean probability over sentences.
    ``majority``: the most frequent sentence label, ties broken by mean probability.
    ``stance``: a document is NONE when its sentences' mean probability of taking a side
    is below ``presence``; otherwise it takes the side its sentences take, each weighted by
    how much stance it carries (1 - P(NONE)), so that a few outspoken sentences are not
    drowned by the neutral reporting around them. Without a NONE label it is ``mean``.
    All report the share of sentences with each label and the mean probabilities.
    """
    proba = sentences[[f"proba_{label}" for label in labels]].to_numpy()
    mean = proba.mean(axis=0) if len(proba) else np.full(len(labels), np.nan)
    counts = np.array([(sentences["label"] == label).sum() for label in labels], dtype=float)
    share = counts / counts.sum() if counts.sum() else counts
    if not len(proba):
        label = None
    elif rule == "majority":
        best = np.flatnonzero(counts == counts.max())
        label = labels[best[np.argmax(mean[best])]]
    elif rule == "stance" and NEUTRAL_LABEL in labels:
        label = _stance_label(proba, labels, presence)
    elif rule == "framing":
        weights = framing_weights(sentences["text"].tolist(), quoted_weight, edge_weight)
        framed = weights @ proba / weights.sum()
        label = labels[int(np.argmax(framed))]
        mean = framed  # the document's probabilities are the weighted ones
    else:
        label = labels[int(np.argmax(mean))]
    row = {"label": label}
    row |= {f"proba_{name}": value for name, value in zip(labels, mean)}
    row |= {f"share_{name}": value for name, value in zip(labels, share)}
    # How sure the document label is: its probability less the best other label's (negative
    # where a rule chose a label that is not the most probable, as majority can).
    if label is None or len(labels) < 2:
        row["margin"] = np.nan
    else:
        chosen = labels.index(label)
        row["margin"] = float(mean[chosen] - np.delete(mean, chosen).max())
    return row


def quoted_share(text: str) -> float:
    """The share of a sentence's letters that lie inside quotation marks.

    >>> round(quoted_share("He said: ‘We will answer.’"), 2)
    0.67
    """
    inside = letters = start = depth = 0
    for position, after in _quote_marks(text, 0):
        count = sum(ch.isalpha() for ch in text[start:position])
        letters, inside = letters + count, inside + (count if depth else 0)
        start, depth = position + 1, after
    if depth:
        # A quotation that never closes is a stray mark (the ‘90s, 12" of rain), not a quote:
        # trusting it would weigh down a run of the author's own sentences.
        return 0.0
    letters += sum(ch.isalpha() for ch in text[start:])
    return inside / letters if letters else 0.0


def framing_weights(
    texts: list[str], quoted_weight: float = QUOTED_WEIGHT, edge_weight: float = EDGE_WEIGHT
) -> np.ndarray:
    """Each sentence's weight under the ``framing`` rule (see ``QUOTED_WEIGHT``)."""
    weights = np.ones(len(texts))
    for i, text in enumerate(texts):
        if quoted_share(text) >= 0.5 or REPORTED_SPEECH.search(text):
            weights[i] *= quoted_weight
    if len(texts) > 1:
        weights[[0, -1]] *= edge_weight
    if not weights.sum():  # every sentence quoted, at weight 0: they are all there is
        weights[:] = 1.0
    return weights


def _stance_label(proba: np.ndarray, labels: tuple[str, ...], presence: float) -> str:
    neutral = labels.index(NEUTRAL_LABEL)
    carried = 1.0 - proba[:, neutral]
    if carried.mean() < presence:
        return NEUTRAL_LABEL
    sides = [i for i in range(len(labels)) if i != neutral]
    weighted = carried @ proba[:, sides]
    return labels[sides[int(np.argmax(weighted))]]


DOCUMENT_SUFFIXES = (".txt", ".md", "")


def document_sources(source: str | Path) -> list[tuple[str, Path | None]]:
    """``(document id, file)`` for one file, every plain-text file under a folder, or ``-`` (stdin,
    file None).

    A folder is walked with its subfolders, in sorted order. A document's id is
    its path under the folder without the extension ("2024/strikes"), or with
    it where two files would otherwise share an id ("notes.txt", "notes.md").
    Only the list of files is read here: each document's text is read when its
    chunk comes, so memory does not grow with the corpus.
    """
    if str(source) == "-":
        return [("stdin", None)]
    path = Path(source)
    if path.is_file():
        return [(path.stem, path)]
    if not path.is_dir():
        raise DataError(
            f"{path} does not exist; --documents expects a plain-text file, a folder of them, or - "
            "for stdin."
        )
    files = [
        p
        for p in path.rglob("*")
        if p.is_file() and is_document_path(p.relative_to(path).as_posix())
    ]
    if not files:
        raise DataError(
            f"{path} holds no .txt or .md files (names starting with . or _ are skipped); "
            "--documents expects plain-text files or a folder of them."
        )
    return [
        (doc_id, path / relative)
        for relative, doc_id in document_ids([f.relative_to(path).as_posix() for f in files])
    ]


def document_ids(relative_paths: list[str]) -> list[tuple[str, str]]:
    """``(relative path, document id)`` in corpus order, for the files' paths under the folder.

    Shared by the local route and ``--engine spark``, whose executors see the same paths, so a
    document has one id and one position (its ``line``) on both.
    """
    ordered = sorted(relative_paths, key=lambda relative: PurePosixPath(relative).parts)
    stems = [PurePosixPath(relative).with_suffix("").as_posix() for relative in ordered]
    shared = {stem for stem, count in Counter(stems).items() if count > 1}
    return [
        (relative, relative if stem in shared else stem) for relative, stem in zip(ordered, stems)
    ]


def is_document_path(relative: str | PurePosixPath) -> bool:
    """Whether a file at this path under the corpus folder is read as a document: a known
    suffix, and no part of the path skipped (see :func:`is_skipped_name`)."""
    parts = PurePosixPath(relative).parts
    return (
        bool(parts)
        and not any(is_skipped_name(part) for part in parts)
        and PurePosixPath(parts[-1]).suffix in DOCUMENT_SUFFIXES
    )


def read_document(file: Path | None) -> tuple[str, str | None]:
    """A document's text and ``None``, or ``""`` and why it cannot be read (it is then rejected, not
    fatal).
    """
    if file is None:
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = file.read_bytes()
        except OSError as error:
            return "", f"unreadable file: {error.strerror}"
    return decode_document(raw)


def decode_document(raw: bytes) -> tuple[str, str | None]:
    """A document's bytes as text and ``None``, or ``""`` and why they cannot be read."""
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        return (
            "",
            f"undecodable bytes: byte {error.start} is not valid UTF-8; save the document as UTF-8",
        )
