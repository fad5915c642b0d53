"""The feature pipeline: scikit-learn transformers over a DataFrame of ``text`` and ``target``."""

from features.embeddings import SentenceEmbeddings
from features.lexicon import SentimentLexicon
from features.ngrams import CharNgrams, TargetNgrams, WordNgrams
from features.pipeline import FEATURE_STEPS, build_features, register_step
from features.static import StaticEmbeddings
from features.style import StyleFeatures
from features.target import TargetRelatedness, TargetSpecificCopies
from features.text import Tokenizer

__all__ = [
    "CharNgrams",
    "FEATURE_STEPS",
    "SentenceEmbeddings",
    "SentimentLexicon",
    "StaticEmbeddings",
    "StyleFeatures",
    "TargetNgrams",
    "TargetRelatedness",
    "TargetSpecificCopies",
    "Tokenizer",
    "WordNgrams",
    "build_features",
    "register_step",
]
