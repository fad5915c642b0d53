"""`stance cascade FAST ACCURATE`: one model from two runs, the threshold chosen on validation.

The fast model answers every row whose highest probability reaches the threshold; the
rest go on to the accurate model (:class:`train.models.Cascade`). Where the threshold
lies is a trade: forward more rows and the cascade is as good as the accurate model
and as slow; forward fewer and it is as fast as the fast one and as good.

The threshold is read off the validation rows of the two training runs, from the
predictions and probabilities each logged there (``evaluation/predictions_valid.csv``,
made before any refit on validation, so neither model had seen those rows). For every
share of rows forwarded, 0 % to 100 % in steps of 1 %, the validation metric of the
joined predictions is computed; the cascade takes the smallest share from which on it
stays within ``max_loss`` points of the accurate model's own. Nothing is predicted
again: the cascade of two models gives, row for row, what the two logged.

Its test metrics come the same way from the rows both runs logged for test, made by
the final models that the cascade holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from train import schema, scoring, store, tracking
from train.artifact import open_model
from train.errors import StanceError
from train.metrics import headline_value
from train.models import Cascade, StanceModel, confidence

# Shares of validation rows forwarded that are tried: 0 %, 1 %, ... 100 %.
SHARES = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class CascadeResult:
    run_id: str
    threshold: float
    metrics: dict[str, float]
    headline: str
    curve: pd.DataFrame


def logged_predictions(run_id: str, rows: str, labels: tuple[str, ...]) -> pd.DataFrame:
    """A training run's logged predictions of ``rows`` (valid, test), with their probabilities,
    indexed by row id."""
    path = schema.predictions(rows)
    if not store.has_artifact(run_id, path):
        raise StanceError(
            f"Run {run_id} logged no {path}; `stance cascade` joins runs made by `stance train`."
        )
    frame = pd.read_csv(
        pd.io.common.StringIO(store.read_artifact(run_id, path)),
        dtype={"id": str, "label": str, "predicted": str},
        keep_default_na=False,
    )
    wanted = [f"proba_{label}" for label in labels]
    if missing := [column for column in wanted if column not in frame.columns]:
        raise StanceError(
            f"Run {run_id} logged its {rows} predictions without {missing[0]} (runs trained "
            "before `stance cascade` existed keep labels only). Train the experiment again, or "
            f"`stance reproduce {run_id[:8]}`, and join the new run."
        )
    return frame.set_index("id")


def joined(
    fast: pd.DataFrame, accurate: pd.DataFrame, labels: tuple[str, ...], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """The cascade's labels for rows both runs predicted, and which rows it forwarded: the rule of
    :meth:`train.models.Cascade.forwarded`, applied to logged predictions."""
    forward = confidence(fast, labels) < threshold
    return np.where(forward, accurate["predicted"], fast["predicted"]), forward


def threshold_for_share(confidence: np.ndarray, share: float) -> float:
    """The threshold that forwards the least confident ``share`` of these rows (fewer where
    confidences tie at the cut)."""
    ordered = np.sort(confidence)
    cut = int(round(share * len(ordered)))
    return math.inf if cut >= len(ordered) else float(ordered[cut])


def validation_curve(
    fast: pd.DataFrame, accurate: pd.DataFrame, labels: tuple[str, ...], metric: str
) -> pd.DataFrame:
    """For each share in :data:`SHARES`: its threshold, the share it really forwards, and the
    joined predictions' ``metric``."""
    sureness = confidence(fast, labels)
    index = {label: i for i, label in enumerate(labels)}
    truth = fast["label"].map(index).to_numpy()
    rows = []
    for share in SHARES:
        threshold = threshold_for_share(sureness, share)
        predicted, forward = joined(fast, accurate, labels, threshold)
        codes = np.array([index[p] for p in predicted])
        rows.append(
            {
                "share": share,
                "threshold": threshold,
                "forwarded": float(forward.mean()),
                metric: headline_value(truth, codes, labels, metric),
            }
        )
    return pd.DataFrame(rows)


def choose(curve: pd.DataFrame, metric: str, accurate_value: float, max_loss: float) -> pd.Series:
    """The curve's row with the smallest share from which on the metric stays within
    ``max_loss`` (a fraction, like the metric) of the accurate model's: a single lucky share
    below a worse stretch is not taken."""
    within = curve[metric].to_numpy() >= accurate_value - max_loss - 1e-12
    # The last row forwards every row, so it equals the accurate model and is always within.
    holds_from = len(within) - np.argmin(within[::-1]) if not within.all() else 0
    return curve.iloc[min(holds_from, len(curve) - 1)]


def _aligned(fast: pd.DataFrame, accurate: pd.DataFrame, rows: str, ids: tuple[str, str]):
    """The two runs' rows, in one order; both runs must have predicted the same rows."""
    if set(fast.index) != set(accurate.index) or fast.index.has_duplicates:
        raise StanceError(
            f"Runs {ids[0]} and {ids[1]} predicted different {rows} rows, so they were trained on "
            "different data or splits. A cascade's threshold is chosen on rows both models "
            "predicted: train both experiments on the same data, split and seed."
        )
    accurate = accurate.loc[fast.index]
    if not (fast["label"] == accurate["label"]).all():
        raise StanceError(
            f"Runs {ids[0]} and {ids[1]} give some {rows} rows different true labels; train both "
            "on the same data."
        )
    return fast, accurate


def build(fast_run: str, accurate_run: str, max_loss: float = 0.5, log=print) -> CascadeResult:
    """Join two training runs' models into a :class:`Cascade`, log it as a run, return it.

    ``max_loss``: points of the headline metric (on validation) the cascade may give up
    against the accurate model, in return for speed.
    """
    if not 0 <= max_loss <= 100:
        raise StanceError(
            f"--max-loss is in points of the headline metric, 0 to 100; found {max_loss}."
        )
    fast_info, accurate_info = store.run_info(fast_run), store.run_info(accurate_run)
    ids = (fast_info["run_id"], accurate_info["run_id"])
    for info, role in ((fast_info, "fast"), (accurate_info, "accurate")):
        if schema.kind(info["tags"]) != "training":
            raise StanceError(
                f"The {role} run {info['run_id']} is a {schema.kind(info['tags'])} run; "
                "`stance cascade` joins the models of two `stance train` runs."
            )
        if info["tags"].get(schema.SMALL_DATA):
            raise StanceError(
                f"The {role} run {info['run_id']} was trained on few rows, all of them fitted "
                "(cross-validated, nothing held out): a cascade chooses its threshold on "
                "validation rows neither model saw. Train both on more rows, or with "
                "--set split.small_data_below=0 to hold rows out."
            )
    if ids[0] == ids[1]:
        raise StanceError("The fast and the accurate run are one run; name two runs.")
    fast_model = open_model(f"runs:/{ids[0]}/{schema.MODEL}").model
    accurate_model = open_model(f"runs:/{ids[1]}/{schema.MODEL}").model
    if not isinstance(fast_model, StanceModel) or not isinstance(accurate_model, StanceModel):
        raise StanceError("A cascade joins two trained models, not cascades.")
    labels = accurate_model.labels
    metric = accurate_model.config.get("headline_metric", "macro_f1")
    seed = int(accurate_model.config.get("seed", 0))

    fast, accurate = _aligned(
        logged_predictions(ids[0], "valid", labels),
        logged_predictions(ids[1], "valid", labels),
        "validation",
        ids,
    )
    curve = validation_curve(fast, accurate, labels, metric)
    accurate_value, fast_value = curve[metric].iloc[-1], curve[metric].iloc[0]
    chosen = choose(curve, metric, accurate_value, max_loss / 100)
    threshold = float(chosen["threshold"])
    log(
        f"validation {metric}: fast {100 * fast_value:.2f}, accurate {100 * accurate_value:.2f}; "
        f"threshold {threshold:.4f} forwards {chosen['forwarded']:.1%} of rows for "
        f"{100 * chosen[metric]:.2f}"
    )

    test_fast, test_accurate = _aligned(
        logged_predictions(ids[0], "test", labels),
        logged_predictions(ids[1], "test", labels),
        "test",
        ids,
    )
    predicted, forward = joined(test_fast, test_accurate, labels, threshold)
    truth = test_fast["label"].to_numpy()
    metrics = scoring.score("test", truth, predicted, labels, headline=metric, seed=seed)
    metrics |= {
        "test_forwarded": float(forward.mean()),
        f"valid_{metric}": float(chosen[metric]),
        f"valid_{metric}_fast": float(fast_value),
        f"valid_{metric}_accurate": float(accurate_value),
        "valid_forwarded": float(chosen["forwarded"]),
    }
    cascade = Cascade(
        fast_model,
        accurate_model,
        threshold,
        config={
            "fast_run": ids[0],
            "accurate_run": ids[1],
            "max_loss": max_loss,
            "headline_metric": metric,
        },
        metrics=metrics,
    )

    experiment = accurate_info["tags"].get(schema.EXPERIMENT, "cascade")
    tags = {schema.CASCADE_FAST: ids[0], schema.CASCADE_ACCURATE: ids[1]}
    results = {"model": cascade, "metrics": metrics}
    with tracking.command_run(experiment, results, tags) as run_id:
        params = {
            "headline_metric": metric,
            "cascade.fast_run": ids[0],
            "cascade.accurate_run": ids[1],
            "cascade.max_loss": max_loss,
            "cascade.threshold": threshold,
        }
        if digest := accurate_info["params"].get("data.digest"):
            params["data.digest"] = digest
        figure = curve_figure(curve, metric, chosen, experiment, max_loss)
        tracking.log_cascade(params, metrics, curve, figure)
        plt.close(figure)
        scoring.log_scores(
            "test",
            f"{experiment}: cascade, test",
            truth,
            predicted,
            labels,
            None,  # the runs' logged predictions carry no targets
            pd.DataFrame({"id": test_fast.index, "label": truth, "predicted": predicted}),
        )
        example = pd.DataFrame({"text": ["an example sentence"], "target": [""]})
        if cascade.needs_target:
            example["target"] = next(iter(accurate_model.own_targets() or [""]), "")
        tracking.log_model(cascade, example)
    return CascadeResult(run_id, threshold, metrics, f"test_{metric}", curve)


def curve_figure(
    curve: pd.DataFrame, metric: str, chosen: pd.Series, title: str, max_loss: float | None = None
):
    """The validation metric against the share of rows forwarded: the fast model alone (0 %)
    and the accurate one alone (100 %) as levels, the band of ``max_loss`` points below the
    accurate model that the choice must stay within, and the chosen share. The y axis starts
    below the fast model's level, so a tenth of a point does not fill the height."""
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    forwarded, value = 100 * curve["forwarded"], 100 * curve[metric]
    fast, accurate = value.iloc[0], value.iloc[-1]
    if max_loss:
        axis.axhspan(
            accurate - max_loss, accurate, color="tab:green", alpha=0.12,
            label=f"within {max_loss:g} points of the accurate model",
        )  # fmt: skip
    axis.axhline(accurate, color="tab:green", linewidth=1, label=f"accurate alone {accurate:.2f}")
    axis.axhline(fast, color="tab:orange", linewidth=1, label=f"fast alone {fast:.2f}")
    axis.plot(forwarded, value, color="tab:blue", label="cascade")
    axis.axvline(
        100 * chosen["forwarded"], color="tab:red", linestyle="--",
        label=f"chosen: {100 * chosen['forwarded']:.1f} % forwarded, {100 * chosen[metric]:.2f}",
    )  # fmt: skip
    low = min(fast, value.min(), accurate - (max_loss or 0))
    high = max(accurate, value.max())
    margin = max(1.0, 0.25 * (high - low))  # a floor of a point: noise must look small
    axis.set_ylim(low - margin, high + margin)
    axis.set_xlim(0, 100)
    axis.set_xlabel("rows forwarded to the accurate model (%)")
    axis.set_ylabel(f"validation {metric}")
    axis.set_title(f"{title}: cascade")
    axis.legend(loc="lower right", fontsize="x-small")
    figure.tight_layout()
    return figure
