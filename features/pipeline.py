"""Compose the feature steps named in an experiment config into one FeatureUnion."""

from __future__ import annotations

from sklearn.pipeline import FeatureUnion

from features.embeddings import SentenceEmbeddings
from features.lexicon import SentimentLexicon
from features.ngrams import CharNgrams, TargetNgrams, WordNgrams
from features.style import StyleFeatures
from features.target import TargetRelatedness

# Step name in configs and overrides (``--set word__min_df=2``) -> transformer.
FEATURE_STEPS = {
    "word": WordNgrams,
    "char": CharNgrams,
    "target_words": TargetNgrams,
    "target_conditioned": WordNgrams,
    "target_cues": WordNgrams,
    "relatedness": TargetRelatedness,
    "sentiment": SentimentLexicon,
    "style": StyleFeatures,
    # Optional extra (uv sync --extra embeddings); never a default step.
    "embeddings": SentenceEmbeddings,
}

# Steps that are the same class with different defaults.
STEP_DEFAULTS = {
    "target_conditioned": {"by_target": True, "ngram_range": (1, 1)},
    "target_cues": {"cross_target_words": 2, "ngram_range": (1, 2), "negation": True},
}


def build_features(steps: dict[str, dict], n_jobs: int | None = None) -> FeatureUnion:
    """Build a ``FeatureUnion`` from ``{step_name: {param: value}}``.

    Examples
    --------
    >>> union = build_features({"word": {"ngram_range": (1, 2)}, "style": {}})
    >>> [name for name, _ in union.transformer_list]
    ['word', 'style']
    """
    if not steps:
        raise ValueError(f"At least one feature step is needed; choose from {sorted(FEATURE_STEPS)}.")
    transformers = []
    for name, params in steps.items():
        if name not in FEATURE_STEPS:
            raise ValueError(f"Unknown feature step {name!r}; expected one of {sorted(FEATURE_STEPS)}.")
        kwargs = {**STEP_DEFAULTS.get(name, {}), **params}
        if "ngram_range" in kwargs:
            kwargs["ngram_range"] = tuple(kwargs["ngram_range"])
        transformers.append((name, FEATURE_STEPS[name](**kwargs)))
    return FeatureUnion(transformers, n_jobs=n_jobs)
