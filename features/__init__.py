"""The feature pipeline: scikit-learn transformers over a DataFrame of ``text`` and ``target``.

The names below are imported on first use (PEP 562), not with the package: importing
``features.steps`` for the step names must not import scikit-learn, so that the CLI can check
an experiment's step names in milliseconds.
"""

import importlib

_HOMES = {
    "CharNgrams": "features.ngrams",
    "FEATURE_STEPS": "features.pipeline",
    "SentenceEmbeddings": "features.embeddings",
    "SentimentLexicon": "features.lexicon",
    "StaticEmbeddings": "features.static",
    "StyleFeatures": "features.style",
    "TargetNgrams": "features.ngrams",
    "TargetRelatedness": "features.target",
    "TargetSpecificCopies": "features.target",
    "Tokenizer": "features.text",
    "WordNgrams": "features.ngrams",
    "build_features": "features.pipeline",
    "register_step": "features.pipeline",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return __all__
