"""Tokenization for tweets and news: NLTK tokenizers, negation scope, stemming.

Everything here works without NLTK data packages, so nothing is downloaded at
run time. The :class:`Tokenizer` is a plain picklable callable (no lambdas) so
that a fitted pipeline holding it can be saved, cloned and shipped with MLflow.
"""

from __future__ import annotations

import functools
import re
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

# One pass of re.findall: URLs, @mentions, #hashtags, words with inner
# apostrophes or hyphens (don't, U.S., well-known), numbers, and runs of
# punctuation such as "!!!" or "?!" that carry stance in tweets.
TOKEN_PATTERN = (
    r"https?://\S+|www\.\S+"
    r"|[@#]\w+"
    r"|(?:[A-Za-z]\.){2,}"
    r"|\w+(?:['’\-]\w+)*"
    r"|[!?]+|[^\w\s]"
)

_TOKEN_RE = re.compile(TOKEN_PATTERN)

# The same pattern for RE2 (pyarrow's compute kernels), exact on pure-ASCII text: there Python's
# \w is RE2's, and Python's \s is RE2's plus \v and \x1c-\x1f. \v is named here; texts holding
# \x1c-\x1f are left to Python, as Arrow's whitespace split would not split at them.
_ASCII_SPACE = r"\t\n\x0b\x0c\r "
_ASCII_TOKEN_PATTERN = (
    rf"https?://[^{_ASCII_SPACE}]+|www\.[^{_ASCII_SPACE}]+"
    r"|[@#]\w+"
    r"|(?:[A-Za-z]\.){2,}"
    # Not in TOKEN_PATTERN: a run of words each followed by a space, one match where re.findall
    # makes one per word, with the same tokens once split at the spaces (a word followed by a
    # space cannot begin any alternative above). A third of the kernel's time.
    r"|(?:\w+(?:['\-]\w+)* )+"
    r"|\w+(?:['\-]\w+)*"
    rf"|[!?]+|[^\w{_ASCII_SPACE}]"
)
# Below this many texts a batch is split by Python: the kernels' fixed cost outweighs their speed.
_ARROW_MIN_TEXTS = 64
TOKENIZERS = ("regex", "tweet", "whitespace")
STEMMERS = (None, "porter", "snowball")

# Joins target and text into one document for target-conditioned n-grams;
# a control character that does not occur in natural text.
TARGET_SEPARATOR = "\x1f"

_URL = re.compile(r"^(?:https?://|www\.)")
# A hashtag, and the words of a CamelCase run ("StopTheWar" -> Stop, The, War).
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _expand_hashtag(match: re.Match) -> str:
    parts = _CAMEL_PART.findall(match.group(1))
    return match.group(0) + (" " + " ".join(parts) + " ," if len(parts) > 1 else "")


def _spell_hashtag(match: re.Match) -> str:
    return " ".join(_CAMEL_PART.findall(match.group(1))) or match.group(1)


def spell_out_hashtags(text: str) -> str:
    """``#StopTheWar rally`` -> ``Stop The War rally``: the hashtag replaced by its words.

    The tokenizer's ``split_hashtags`` keeps the tag and adds its words, for
    n-grams; this form reads as plain text, for the sentence encoder.
    """
    return _HASHTAG.sub(_spell_hashtag, text) if "#" in text else text


# A cheap test on the whole text before the per-token negation pass; a superset
# of NLTK's negation words, so it never skips a sentence that has one.
_MAY_NEGATE = re.compile(r"n[o']|n't|nt\b|never|ain", re.IGNORECASE)
# Where a negation's scope ends. NLTK's mark_negation stops only at . : ; ! ?,
# which lets "not X, but we like it" negate "like"; commas and "but" end it here.
_SCOPE_END = re.compile(r"^(?:[.,:;!?]+|but|however|although|though)$")


_PLAIN, _NEGATES, _ENDS_SCOPE = 0, 1, 2
# Each distinct token's role, found once per process: NLTK's negation pattern runs through its
# ReDoS guard, which made it the slowest part of tokenizing (2.8 s per 50k tweets, now 0.3).
_ROLES: dict[str, int] = {}
_ROLES_LIMIT = 500_000


@functools.cache
def _negation_pattern() -> re.Pattern:
    # NLTK is imported where it is used: importing it takes 0.4 s, which a word model that
    # neither negates nor stems need not spend.
    from nltk.sentiment.util import NEGATION_RE

    return NEGATION_RE


def _role(token: str) -> int:
    role = _ROLES.get(token)
    if role is None:
        if _SCOPE_END.match(token):
            role = _ENDS_SCOPE
        else:
            role = _NEGATES if _negation_pattern().search(token) else _PLAIN
        if len(_ROLES) < _ROLES_LIMIT:
            _ROLES[token] = role
    return role


def mark_negation(tokens: list[str]) -> list[str]:
    """Append ``_NEG`` to tokens after a negation word (NLTK's list) until the clause ends."""
    roles = list(map(_ROLES.get, tokens))
    if None in roles:
        roles = list(map(_role, tokens))
    # Most sentences that pass the cheap filter ("know", "no one's") negate nothing.
    if _NEGATES not in roles:
        return tokens
    out, negated = [], False
    for token, role in zip(tokens, roles):
        if role == _ENDS_SCOPE:
            negated = False
            out.append(token)
        elif negated:
            out.append(token + "_NEG")
        else:
            out.append(token)
            negated = role == _NEGATES
    return out


# The last batch's tokens, per tokenizer setting, and the last batches' splits (tokens before
# negation and stemming, with the text as split), per splitting setting (see Tokenizer.many).
_RECENT: dict[Tokenizer, dict[str, list[str]]] = {}
_RECENT_SPLITS: dict[tuple, tuple[dict[str, tuple[list[str], str]], ...]] = {}
_SPLIT_BATCHES_KEPT = 3


def _find_split(batches, text: str):
    for batch in batches:
        split = batch.get(text)
        if split is not None:
            return split
    return None


def _rows(mask) -> list[int]:
    """The rows where a boolean Arrow array holds."""
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()


class Tokenizer:
    """Turn a string into a list of normalized tokens.

    Parameters
    ----------
    kind : {"regex", "tweet", "whitespace"}, default="regex"
        ``"regex"`` is a single compiled pattern (fast, aware of hashtags,
        mentions and URLs); ``"tweet"`` is NLTK's ``TweetTokenizer`` (slower,
        handles emoticons and elongations); ``"whitespace"`` splits on spaces.
    lowercase : bool, default=True
    negation : bool, default=False
        Append ``_NEG`` to tokens between a negation word (NLTK's list) and
        the end of the clause (punctuation or "but").
    stemmer : {None, "porter", "snowball"}, default=None
    normalize_urls : bool, default=True
        Replace every URL with ``<url>`` and every @mention with ``@user``, so
        that one-off handles do not become features.
    split_hashtags : bool, default=False
        Follow a CamelCase hashtag with its words: ``#StopTheWar`` also gives
        ``stop the war``, so hashtags share features with plain text.

    Examples
    --------
    >>> Tokenizer(negation=True)("I don't support the strikes!")
    ['i', "don't", 'support_NEG', 'the_NEG', 'strikes_NEG', '!']
    """

    def __init__(
        self,
        kind="regex",
        lowercase=True,
        negation=False,
        stemmer=None,
        normalize_urls=True,
        split_hashtags=False,
    ):
        if kind not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {kind!r}")
        if stemmer not in STEMMERS:
            raise ValueError(f"stemmer must be one of {STEMMERS}, got {stemmer!r}")
        self.kind = kind
        self.lowercase = lowercase
        self.negation = negation
        self.stemmer = stemmer
        self.normalize_urls = normalize_urls
        self.split_hashtags = split_hashtags
        self._build()

    def _build(self):
        if self.kind == "tweet":
            from nltk.tokenize import TweetTokenizer

            split = TweetTokenizer(preserve_case=not self.lowercase, reduce_len=True).tokenize
        elif self.kind == "regex":
            # The pattern has no nested quantifiers, so the standard library's
            # re is safe here; NLTK's RegexpTokenizer now routes through the
            # slower ReDoS-guarded `regex` module, at a third of the speed.
            split = _TOKEN_RE.findall
        else:
            split = str.split
        self._split = split
        self._stem = None
        if self.stemmer == "porter":
            from nltk.stem import PorterStemmer

            self._stem = PorterStemmer()
        elif self.stemmer == "snowball":
            from nltk.stem import SnowballStemmer

            self._stem = SnowballStemmer("english")
        self._cache = {}

    # The stemmer cache and bound methods are rebuilt on load rather than pickled.
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._build()

    def __repr__(self):
        return (
            f"Tokenizer(kind={self.kind!r}, lowercase={self.lowercase}, negation={self.negation}, "
            f"stemmer={self.stemmer!r}, normalize_urls={self.normalize_urls}, "
            f"split_hashtags={self.split_hashtags})"
        )

    def __eq__(self, other):
        return isinstance(other, Tokenizer) and self.__getstate__() == other.__getstate__()

    def __hash__(self):
        return hash(tuple(sorted(self.__getstate__().items())))

    def __call__(self, text: str) -> list[str]:
        return self._finish(*self._split_text(text))

    def _split_text(self, text: str) -> tuple[list[str], str]:
        """The tokens before negation marking and stemming, and the text as it was split."""
        if self.split_hashtags and "#" in text:
            text = _HASHTAG.sub(_expand_hashtag, text)
        if self.lowercase and self.kind != "tweet":
            text = text.lower()
        return self._normalized(self._split(text), text), text

    def _normalized(self, tokens: list[str], text: str) -> list[str]:
        # The substring checks skip the per-token passes for most sentences.
        if self.normalize_urls and ("@" in text or "http" in text or "www." in text):
            tokens = [
                "<url>" if _URL.match(t) else ("@user" if t.startswith("@") and len(t) > 1 else t)
                for t in tokens
            ]
        return tokens

    def flat(self, texts) -> tuple[pa.Array, np.ndarray] | None:
        """The tokens of a batch as one Arrow string array, with each token's row, for counters
        that look tokens up in bulk (:meth:`features.gramindex.GramIndex.count_flat`): no
        Python string is made per token. Each row's tokens are together and in order; the
        texts left to Python (see :meth:`_split_texts`) come last. None where the settings
        need Python per token (negation, stemming, a tokenizer other than ``"regex"``) or the
        batch is small; use :meth:`many` then. Shares nothing with :meth:`many`'s batches."""
        if self.negation or self._stem is not None:
            return None
        split = self._arrow_split(texts)
        if split is None:
            return None
        token_lists, left_to_python, _, _ = split
        tokens = pc.list_flatten(token_lists)
        token_rows = pc.list_parent_indices(token_lists).to_numpy()
        # Empty strings are the split of blank texts only; the texts left to Python come below.
        kept = pc.and_(
            pc.greater(pc.binary_length(tokens), 0),
            pc.invert(pc.array_take(left_to_python, token_rows)),
        )
        tokens, token_rows = tokens.filter(kept), token_rows[kept.to_numpy(zero_copy_only=False)]
        if self.normalize_urls:
            tokens = pc.if_else(
                pc.match_substring_regex(tokens, r"^(?:https?://|www\.)"),
                "<url>",
                pc.if_else(
                    pc.and_(pc.starts_with(tokens, "@"), pc.greater(pc.binary_length(tokens), 1)),
                    "@user",
                    tokens,
                ),
            )
        python_rows = _rows(left_to_python)
        if python_rows:
            python_lists = [self._split_text(texts[row])[0] for row in python_rows]
            tokens = pa.concat_arrays(
                [tokens, pa.array(list(chain.from_iterable(python_lists)), pa.string())]
            )
            token_rows = np.concatenate(
                [token_rows, np.repeat(python_rows, list(map(len, python_lists)))]
            )
        return tokens, token_rows.astype(np.int64, copy=False)

    def _arrow_split(self, texts):
        """The split of a batch by pyarrow's kernels, as an Arrow list array (a blank text
        gives one empty string); which rows it cannot split as Python's ``re`` does; the texts
        as split (hashtags expanded, where the settings ask), as a list and as the Arrow array
        split (lowercased, where the settings ask). None where it does not apply."""
        if self.kind != "regex" or len(texts) < _ARROW_MIN_TEXTS:
            return None
        try:
            array = pa.array(texts, pa.string())
        except (pa.ArrowException, UnicodeEncodeError):  # not all str, or lone surrogates
            return None
        if array.null_count:  # None among the texts: Python's route says what it makes of it
            return None
        if self.split_hashtags:
            # Python's re expands the hashtags (nearly every tweet has one); Arrow splits.
            texts = [_HASHTAG.sub(_expand_hashtag, t) if "#" in t else t for t in texts]
            array = pa.array(texts, pa.string())
        left_to_python = pc.or_(
            pc.invert(pc.string_is_ascii(array)), pc.match_substring_regex(array, r"[\x1c-\x1f]")
        )
        if self.lowercase:
            array = pc.ascii_lower(array)
        trimmed = pc.ascii_trim_whitespace(
            pc.replace_substring_regex(array, _ASCII_TOKEN_PATTERN, r" \0 ")
        )
        return pc.ascii_split_whitespace(trimmed), left_to_python, texts, array

    def _split_texts(self, texts) -> list[tuple[list[str], str]]:
        """:meth:`_split_text` of every text; the regex split of a batch's plain-ASCII texts is
        done by pyarrow's compute kernels (RE2, in C++) at twice the speed of ``re.findall``
        per text, with the same tokens (``tests/features/test_text.py`` fuzzes the two
        against each other)."""
        split = self._arrow_split(texts)
        if split is None:
            return list(map(self._split_text, texts))
        token_lists, left_to_python, as_split, array = split
        token_lists = token_lists.to_pylist()
        lowered = list(map(str.lower, as_split)) if self.lowercase else list(as_split)
        # The few rows that need more than the split, patched one by one: blank texts, URLs
        # and mentions to normalize, texts left to Python.
        for row, tokens in enumerate(token_lists):
            if tokens == [""]:
                token_lists[row] = []
        if self.normalize_urls:
            # On the array split: where it differs from Python's lowercasing (non-ASCII rows),
            # the row is left to Python below, and _normalized checks the text again anyway.
            for row in _rows(pc.match_substring_regex(array, r"@|http|www\.")):
                token_lists[row] = self._normalized(token_lists[row], lowered[row])
        splits = list(zip(token_lists, lowered))
        for row in _rows(left_to_python):
            splits[row] = self._split_text(texts[row])
        return splits

    def _finish(self, tokens: list[str], text: str) -> list[str]:
        if self.negation and _MAY_NEGATE.search(text):
            tokens = mark_negation(tokens)
        if self._stem is not None:
            tokens = self._stemmed(tokens)
        return tokens

    def _splitting(self) -> tuple:
        """The settings that decide the split; negation and stemming come after it."""
        return (self.kind, self.lowercase, self.normalize_urls, self.split_hashtags)

    def many(self, texts) -> list[list[str]]:
        """The tokens of each text. What this process did in its last batches is not done again:
        texts of the last batch with the same settings are not tokenized at all (a model's word
        and target-cue steps read the same texts one after the other), and texts that another
        tokenizer splitting the same way met in the last three batches are not split again,
        only negated or stemmed (FNC-1's body words and its stemmed relatedness step). The
        lists returned are shared; do not change them."""
        finished = _RECENT.get(self, {})
        earlier = _RECENT_SPLITS.get(self._splitting(), ())
        # A batch is either texts met just before (another column's step) or new ones (the next
        # chunk): when its first texts are new, the lookups are skipped for all of them.
        probe = texts[:8]
        if not any(text in finished or _find_split(earlier, text) for text in probe):
            split_list = self._split_texts(texts)
            token_lists = [self._finish(*split) for split in split_list]
            splits = dict(zip(texts, split_list))
        else:
            splits, token_lists = {}, []
            for text in texts:
                tokens = finished.get(text)
                if tokens is None:
                    split = splits.get(text) or _find_split(earlier, text)
                    if split is None:
                        split = self._split_text(text)
                    splits[text] = split
                    tokens = self._finish(*split)
                token_lists.append(tokens)
        _RECENT[self] = dict(zip(texts, token_lists))
        if splits:
            _RECENT_SPLITS[self._splitting()] = (splits, *earlier)[:_SPLIT_BATCHES_KEPT]
        return token_lists

    def _stemmed(self, tokens: list[str]) -> list[str]:
        # Nearly every token of a long text has been stemmed before: a C-level map over the
        # cache costs a tenth of a Python call per token, and a miss fills the cache and retries.
        lookup = self._cache.__getitem__
        try:
            return list(map(lookup, tokens))
        except KeyError:
            for token in tokens:
                if token not in self._cache:
                    self._stem_token(token)
            return list(map(lookup, tokens))

    def _stem_token(self, token: str) -> str:
        stemmed = self._cache.get(token)
        if stemmed is None:
            word, neg, _ = token.partition("_NEG")
            stemmed = self._stem.stem(word) + ("_NEG" if neg else "") if word.isalpha() else token
            self._cache[token] = stemmed
        return stemmed


class NgramAnalyzer:
    """Callable that tokenizes a document and returns its word n-grams.

    With ``prefix_target`` a document is ``target + TARGET_SEPARATOR + text``
    and every n-gram is prefixed with the target, so that the same words can
    weigh differently for different targets.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        ngram_range=(1, 1),
        prefix_target=False,
        target_cues: frozenset | None = None,
    ):
        self.tokenizer = tokenizer
        self.ngram_range = tuple(ngram_range)
        self.prefix_target = prefix_target
        self.target_cues = target_cues

    def __call__(self, doc) -> list[str]:
        if self.prefix_target or self.target_cues is not None:
            target, _, text = doc.partition(TARGET_SEPARATOR)
        else:
            target, text = None, doc
        tokens = self.tokenizer(text)
        low, high = self.ngram_range
        grams = tokens[:] if low == 1 else []
        if low <= 2 <= high:  # the common case, without slicing
            grams.extend([a + " " + b for a, b in zip(tokens, tokens[1:])])
        n_tokens = len(tokens)
        for n in range(max(low, 3), high + 1):
            grams.extend([" ".join(tokens[i : i + n]) for i in range(n_tokens - n + 1)])
        if self.target_cues is not None:
            cues = sorted(self.target_cues.intersection(cue_words(target)))
            return [f"{cue}|{g}" for cue in cues for g in grams]
        if target is not None:
            prefix = f"{target}|"
            grams = [prefix + g for g in grams]
        return grams


@functools.lru_cache(maxsize=65536)
def cue_words(target: str) -> tuple[str, ...]:
    """Content words of a target, Porter-stemmed so that "banned" and "ban" meet.

    Cached: the analyzer asks once per document, and documents share few targets.
    """
    return tuple(t for t in _cue_tokenizer()(target) if t.isalpha() and t not in ENGLISH_STOP_WORDS)


@functools.lru_cache(maxsize=1)
def _cue_tokenizer() -> Tokenizer:
    return Tokenizer(kind="regex", stemmer="porter")
