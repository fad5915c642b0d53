"""Compose the feature steps named in an experiment config into one FeatureUnion."""

from __future__ import annotations

from sklearn.pipeline import FeatureUnion

from features.embeddings import SentenceEmbeddings
from features.lexicon import SentimentLexicon
from features.ngrams import CharNgrams, TargetNgrams, WordNgrams
from features.static import StaticEmbeddings
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
    # Optional extra (embeddings: python3 -m uv sync --frozen --all-extras); never default steps.
    "embeddings": SentenceEmbeddings,
    "static_embeddings": StaticEmbeddings,
}

# Steps that are the same class with different defaults.
STEP_DEFAULTS = {
    "target_conditioned": {"by_target": True, "ngram_range": (1, 1)},
    "target_cues": {"cross_target_words": 2, "ngram_range": (1, 2), "negation": True},
}


def register_step(name: str, cls: type, defaults: dict | None = None) -> None:
    """Make ``cls`` available as the feature step ``[features.NAME]`` (and ``NAME__param``
    overrides).

    ``cls`` is a scikit-learn transformer over a DataFrame of ``text`` and ``target``;
    ``defaults`` are parameters that this step name gives it unless the experiment
    says otherwise. A step that reads the ``target`` column says so with a
    ``reads_target()`` method returning True, so that its models ask for a target.

    Examples
    --------
    >>> from features.style import StyleFeatures
    >>> register_step("style_example", StyleFeatures)
    >>> [name for name, _ in build_features({"style_example": {}}).transformer_list]
    ['style_example']
    >>> del FEATURE_STEPS["style_example"]
    """
    if not (isinstance(cls, type) and hasattr(cls, "fit") and hasattr(cls, "transform")):
        raise TypeError(
            f"register_step expects a transformer class with fit and transform; found {cls!r}."
        )
    FEATURE_STEPS[name] = cls
    if defaults:
        STEP_DEFAULTS[name] = dict(defaults)


def threaded_steps(steps) -> list[str]:
    """The steps among ``steps`` (names) whose cost is matrix products that use every core from
    one process (BLAS or onnxruntime threads); a step declares it with ``threaded = True``.

    Examples
    --------
    >>> threaded_steps(["word", "embeddings"])
    ['embeddings']
    """
    return [name for name in steps if getattr(FEATURE_STEPS.get(name), "threaded", False) is True]


def chunks_on_threads(features: dict) -> bool:
    """Whether a model with these feature steps (name: settings, as its config lists them) may
    transform several chunks at once on threads: each threaded step must say, from its
    settings, that a row's output does not depend on the rows transformed with it
    (``rows_independent``); a threaded step that does not say so counts as dependent."""
    threaded = threaded_steps(features)
    return bool(threaded) and all(
        FEATURE_STEPS[name].rows_independent(features[name])
        if callable(getattr(FEATURE_STEPS[name], "rows_independent", None))
        else False
        for name in threaded
    )


def extras_needed(steps) -> dict[str, str]:
    """The steps among ``steps`` (names) that need an optional extra, with the extra's name.

    A step declares it with a class attribute ``extra``.

    Examples
    --------
    >>> extras_needed(["word", "embeddings"])
    {'embeddings': 'embeddings'}
    """
    return {
        name: FEATURE_STEPS[name].extra
        for name in steps
        if name in FEATURE_STEPS and getattr(FEATURE_STEPS[name], "extra", None)
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
        raise ValueError(
            f"At least one feature step is needed; choose from {sorted(FEATURE_STEPS)}."
        )
    transformers = []
    for name, params in steps.items():
        if name not in FEATURE_STEPS:
            raise ValueError(
                f"Unknown feature step {name!r}; expected one of {sorted(FEATURE_STEPS)}."
            )
        kwargs = {**STEP_DEFAULTS.get(name, {}), **params}
        if "ngram_range" in kwargs:
            kwargs["ngram_range"] = tuple(kwargs["ngram_range"])
        transformers.append((name, FEATURE_STEPS[name](**kwargs)))
    return FeatureUnion(transformers, n_jobs=n_jobs)
