"""The run contract: the tags, artifacts and kinds of the MLflow runs this project logs.

Commands write runs through :mod:`train.tracking`; ``stance runs``, ``show``, ``compare``
and ``reproduce`` read them back (:mod:`train.runs`). Both take every name from here, so
a reader never guesses what a writer meant. A leaf module: it imports nothing.

A run is one of eight kinds, told by its tags:

========== =============================== ==========================================
kind       made by                         tag that marks it
========== =============================== ==========================================
training   ``stance train``, ``reproduce``  none of the others
cv         ``stance cv``                    ``stance.cv`` (folds and grouping)
evaluation ``stance evaluate``              ``stance.evaluated_model`` (the model URI)
search     ``stance search`` (the parent)   ``stance.search`` (the study's name)
trial      one trial of a search            ``mlflow.parentRunId`` (its search)
cascade    ``stance cascade``               ``stance.cascade_accurate`` (and ``_fast``)
selection  ``stance select``                ``stance.selected_with`` (the model URI)
benchmark  a script of benchmarks/          ``stance.benchmark`` (the script's name)
========== =============================== ==========================================
"""

from __future__ import annotations

# --------------------------------------------------------------------------- tags

EXPERIMENT = "stance.experiment"  # every run: the experiment's name
CV = "stance.cv"
SEARCH = "stance.search"
SEARCH_METRIC = "stance.search_metric"  # on trials: the metric the search optimised
SAMPLER_SEED = "stance.sampler_seed"  # on trials: the seed of the sampler that proposed it
# The process that ran a run (tracking.process_tags), to tell a RUNNING run whose process died.
HOST = "stance.host"
PID = "stance.pid"
PID_NAMESPACE = "stance.pid_namespace"
PROCESS_STARTED = "stance.process_started"
EVALUATED_MODEL = "stance.evaluated_model"
EVALUATED_MODEL_SHA256 = (
    "stance.model_sha256"  # on evaluations: the sha256 of the model file scored
)
EVALUATION_DATA = "stance.evaluation_data"
MODEL_FILE_SHA256 = (
    "stance.model_file_sha256"  # on runs that log a model: its manifest's sha256, checked on load
)
CASCADE_FAST = "stance.cascade_fast"  # on a cascade: the run of its fast model
CASCADE_ACCURATE = "stance.cascade_accurate"  # and of its accurate model
BENCHMARK = "stance.benchmark"  # on a benchmark's run: which script logged it
SELECTED_WITH = "stance.selected_with"  # on a selection: the model that scored the corpus
# On a training run of few rows (train/smalldata.py): "K folds x R repeats"; its headline is the
# cross-validated estimate over every row (oof_<metric>), and nothing was held out.
SMALL_DATA = "stance.small_data"
# The machine (train/hardware.py): what chooses the kernels, and so the last bits of a metric.
CPU = "stance.cpu"
CPU_FLAGS = "stance.cpu_flags"
BLAS = "stance.blas"
NUMPY_SIMD = "stance.numpy_simd"
# Each of those tags by the key of train/hardware.py's machine() it records.
MACHINE_TAGS = {"cpu": CPU, "cpu_flags": CPU_FLAGS, "blas": BLAS, "numpy_simd": NUMPY_SIMD}
REPRODUCES = "stance.reproduces"  # on a training run made by `stance reproduce`: the run it repeats
PARENT = "mlflow.parentRunId"  # MLflow's own: a trial's search
RUN_NAME = "mlflow.runName"

# --------------------------------------------------------------------------- artifacts

CONFIG = "config.toml"  # the resolved experiment; `stance train config.toml` trains it again
BEST_CONFIG = "best_config.toml"  # a search's chosen configuration
MANIFEST = "data/manifest.json"  # files, hashes, row counts, split sizes, repeated texts
REJECTS = "data/rejects.csv"
MODEL_CARD = "report/model_card.md"
MODEL = "model"  # the logged MLflow model's name: runs:/RUN_ID/model
CASCADE_CURVE = "cascade/curve_valid.csv"  # a cascade's validation metric per forwarded share
CASCADE_FIGURE = "cascade/curve_valid.png"


def predictions(rows: str) -> str:
    """Every row's label and prediction (and, from training runs, its ``proba_<LABEL>`` columns),
    for paired comparison of two runs on the same rows and for choosing a cascade's threshold."""
    return f"evaluation/predictions_{rows}.csv"


def evaluation_file(kind: str, split: str) -> str:
    """``classification_report`` (.txt), ``confusion_matrix`` (.png) or ``per_target`` (.csv) of a
    split.
    """
    suffix = {"classification_report": "txt", "confusion_matrix": "png", "per_target": "csv"}[kind]
    return f"evaluation/{kind}_{split}.{suffix}"


# --------------------------------------------------------------------------- kinds

KINDS = ("training", "cv", "evaluation", "search", "trial", "cascade", "selection", "benchmark")
# The rows whose predictions a run of each kind logs and scores its headline on
# (predictions(rows), <rows>_<metric>); searches and trials log none.
PREDICTED_ROWS = {
    "training": "test",
    "cv": "oof",
    "evaluation": "eval",
    "search": "test",
    "trial": "test",
    "cascade": "test",
    "selection": "test",  # selections and benchmarks log no predictions: nothing to pair
    "benchmark": "test",
}


def predicted_rows(tags: dict) -> str:
    """The rows a run's headline is scored on (see ``PREDICTED_ROWS``)."""
    return "oof" if tags.get(SMALL_DATA) else PREDICTED_ROWS[kind(tags)]


def kind(tags: dict) -> str:
    """Which command made a run, from its tags (see the table above)."""
    if tags.get(PARENT):
        return "trial"
    if tags.get(SEARCH):
        return "search"
    if tags.get(CV):
        return "cv"
    if tags.get(EVALUATED_MODEL):
        return "evaluation"
    if tags.get(CASCADE_ACCURATE):
        return "cascade"
    if tags.get(SELECTED_WITH):
        return "selection"
    if tags.get(BENCHMARK):
        return "benchmark"
    return "training"
