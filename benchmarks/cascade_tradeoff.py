"""A cascade's trade: validation metric and rows/s against the share of rows forwarded.

From a fast and an accurate training run of one dataset (both trained after `stance cascade`
existed, so their logged predictions carry probabilities):

1. The validation curve of :func:`train.cascade.validation_curve`: for each share of validation
   rows forwarded, the threshold that forwards it and the joined predictions' headline metric.
   Test rows are not read.
2. For each ``--shares`` value, a :class:`~train.models.Cascade` with that share's threshold is
   written to benchmarks/out/, and ``stance predict`` is timed on it, on the fast and the
   accurate model alone, and on the accurate model with its encoder switched to the numpy
   runtime (the path the accurate models took before onnxruntime; its weights are the same
   model's, so only the speed is read from it). Whole commands, start-up and loading included,
   ``--repeats`` times, alternating models; medians. The rows are speed_tiers.py's distinct texts.

    STANCE_DATA_DIR=../shared/data MLFLOW_TRACKING_URI=sqlite:///STORE \\
        python3 -m uv run --frozen --all-extras python benchmarks/cascade_tradeoff.py \\
        --dataset semeval2016 --fast RUN --accurate RUN --rows 6000

Results: markdown on stdout, JSON in benchmarks/out/cascade_<dataset>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys

from speed_tiers import OUT, build_input, timed

from train import schema, store
from train.artifact import open_model
from train.cascade import logged_predictions, threshold_for_share, validation_curve
from train.models import Cascade, confidence


def numpy_twin(model):
    """The same fitted model with every sentence encoder on the numpy runtime.

    Fitted copies (a target's model, the copies of ``shared_per_target``) are not reached by
    ``set_params``, which changes only the unfitted parameters, so every object is walked."""
    from features.embeddings import SentenceEmbeddings

    twin, seen = copy.deepcopy(model), set()

    def walk(value):
        if id(value) in seen or isinstance(value, (str, bytes, int, float)):
            return
        seen.add(id(value))
        if isinstance(value, SentenceEmbeddings):
            value.runtime = "numpy"
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            children = vars(value).values()
        else:
            return
        for child in list(children):
            walk(child)

    walk(twin)
    return twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=["semeval2016", "fnc1", "argq"])
    parser.add_argument("--fast", required=True, metavar="RUN")
    parser.add_argument("--accurate", required=True, metavar="RUN")
    parser.add_argument("--shares", default="0.1,0.2,0.3,0.5")
    parser.add_argument("--rows", type=int, default=6_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-numpy", action="store_true", help="skip the numpy baseline")
    args = parser.parse_args()

    store.configure()
    runs = {
        role: store.run_info(run)["run_id"]
        for role, run in vars(args).items()
        if role in ("fast", "accurate")
    }
    fast = open_model(f"runs:/{runs['fast']}/{schema.MODEL}").model
    accurate = open_model(f"runs:/{runs['accurate']}/{schema.MODEL}").model
    labels, metric = accurate.labels, accurate.config["headline_metric"]
    valid = {role: logged_predictions(run, "valid", labels) for role, run in runs.items()}
    valid["accurate"] = valid["accurate"].loc[valid["fast"].index]
    curve = validation_curve(valid["fast"], valid["accurate"], labels, metric)
    sureness = confidence(valid["fast"], labels)

    OUT.mkdir(parents=True, exist_ok=True)
    models = {"fast": fast, "accurate": accurate}
    if not args.no_numpy:
        models["accurate-numpy"] = numpy_twin(accurate)
    shares = [float(s) for s in args.shares.split(",")]
    for share in shares:
        models[f"cascade-{share:.2f}"] = Cascade(
            fast, accurate, threshold_for_share(sureness, share)
        )
    paths = {}
    for name, model in models.items():
        paths[name] = OUT / f"cascade_{args.dataset}_{name}.pkl"
        model.save(paths[name])

    source = build_input(args.dataset, args.rows)
    rows = sum(1 for _ in open(source, encoding="utf-8")) - 1  # no text holds a newline
    chunk = min(10_000, max(500, args.rows // (4 * args.jobs)))
    timings = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, path in paths.items():
            command = [sys.executable, "-m", "train.cli", "predict", str(path), str(source)]
            command += ["-o", str(OUT / f"cascade_{args.dataset}_{name}.csv")]
            command += ["--jobs", str(args.jobs), "--no-progress", "--chunk-size", str(chunk)]
            timings[name].append(timed(command))

    def speed(name):
        return rows / statistics.median(s for s, _ in timings[name])

    baseline = speed("accurate-numpy") if "accurate-numpy" in timings else None
    results = []
    for name in paths:
        if name.startswith("cascade-"):
            share = float(name.split("-")[1])
            point = curve.iloc[(curve["share"] - share).abs().argmin()]
            forwarded, value = float(point["forwarded"]), float(point[metric])
        else:
            forwarded = {"fast": 0.0}.get(name, 1.0)
            value = float(curve[metric].iloc[0 if name == "fast" else -1])
        results.append(
            {
                "model": name,
                "valid_forwarded": round(forwarded, 4),
                f"valid_{metric}": round(100 * value, 2),
                "rows": rows,
                "rows_per_s": round(speed(name)),
                "vs_numpy": round(speed(name) / baseline, 2) if baseline else None,
                "vs_accurate": round(speed(name) / speed("accurate"), 2),
                "peak_rss_mib": round(max(r for _, r in timings[name])),
                "runs": [round(s, 2) for s, _ in timings[name]],
            }
        )
    (OUT / f"cascade_{args.dataset}.json").write_text(
        json.dumps({"runs": runs, "metric": metric, "results": results}, indent=2)
    )
    curve.to_csv(OUT / f"cascade_{args.dataset}_curve.csv", index=False)
    print(
        f"| model | valid forwarded | valid {metric} | rows/s | vs numpy | vs accurate | RSS MiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['model']} | {r['valid_forwarded']:.1%} | {r[f'valid_{metric}']:.2f} | "
            f"{r['rows_per_s']:,} | {r['vs_numpy'] or '-'} | {r['vs_accurate']} | "
            f"{r['peak_rss_mib']:,} |"
        )


if __name__ == "__main__":
    main()
