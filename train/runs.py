"""Finding, showing, comparing and reproducing logged runs: `stance runs`, `show`, `compare`,
`reproduce`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pandas as pd

from train import hardware, schema, store, tracking
from train.config import Config
from train.data import load_dataset
from train.errors import DataError, StanceError
from train.metrics import paired_bootstrap
from train.sources import data_root

KEY_PARAMS = ("model.strategy", "model.classifier")
# A run the store calls RUNNING whose process has ended without closing it (SIGKILL, a crash,
# a reboot): it will never finish.
GONE = "DIED"


def _tags_of(row: pd.Series) -> dict:
    return {
        key.removeprefix("tags."): value
        for key, value in row.items()
        if key.startswith("tags.") and isinstance(value, str)
    }


def list_runs(
    experiment: str | None = None, sort: str | None = None, limit: int = 20, trials: bool = False
) -> pd.DataFrame:
    """One row per run: id, start, experiment, key params, headline metric and its value, data
    digest.

    Search trials (child runs) are left out unless ``trials``; a trial's headline is the
    validation or cross-validation metric its search optimised, since trials never see test."""
    columns = [
        "run_id",
        "start",
        "experiment",
        "strategy",
        "classifier",
        "headline",
        "value",
        "data",
    ]
    found = store.find_runs(experiment)
    if found.empty:
        return pd.DataFrame(columns=columns)
    parent = _column(found, f"tags.{schema.PARENT}")
    if not trials:
        found = found[parent.isna()].reset_index(drop=True)
        parent = parent[parent.isna()].reset_index(drop=True)
        if found.empty:
            return pd.DataFrame(columns=columns)
    headline_of = dict(zip(found["run_id"], _column(found, "params.headline_metric")))
    headlines = [
        _headline(row, headline_of.get(parent_id))
        for parent_id, (_, row) in zip(parent, found.iterrows())
    ]
    table = pd.DataFrame(
        {
            "run_id": found["run_id"],
            "start": pd.to_datetime(found["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
            "experiment": _column(found, f"tags.{schema.EXPERIMENT}").fillna(
                _column(found, "experiment")
            ),
            "strategy": _column(found, f"params.{KEY_PARAMS[0]}"),
            "classifier": _column(found, f"params.{KEY_PARAMS[1]}"),
            "headline": [h or "?" for h in headlines],
            "value": [
                row.get(f"metrics.{h}") if h else None
                for h, (_, row) in zip(headlines, found.iterrows())
            ],
            "data": _column(found, "params.data.digest"),
        }
    )
    status = _column(found, "status").copy()
    for position, (_, row) in enumerate(found.iterrows()):
        if status.iloc[position] == "RUNNING" and store.process_gone(_tags_of(row)):
            status.iloc[position] = GONE
    if (status.fillna("FINISHED") != "FINISHED").any():
        # A run that failed (its store went away after the fit) or is still going has no model yet.
        table.insert(1, "status", status.fillna("?").to_numpy())
    if trials:
        # A trial logs only the parameters it searched; the rest are its parent's.
        parents = table.set_index("run_id")
        for name in ("strategy", "classifier", "data"):
            inherited = parent.map(parents[name]) if parent.notna().any() else parent
            table[name] = table[name].fillna(inherited)
        table.insert(1, "parent", parent.str[:8].fillna(""))
    if sort:
        column = f"metrics.{sort}"
        if column not in found.columns:
            known = sorted(
                c.removeprefix("metrics.") for c in found.columns if c.startswith("metrics.")
            )
            raise StanceError(
                f"No metric {sort!r} in these runs; metrics logged: "
                f"{known[:30]}{' ...' if len(known) > 30 else ''}."
            )
        table[sort] = found[column].to_numpy()
        table = table.sort_values(sort, ascending=False, kind="stable", na_position="last")
    return table.head(limit).reset_index(drop=True)


def _column(found: pd.DataFrame, name: str) -> pd.Series:
    return (
        found[name]
        if name in found.columns
        else pd.Series([None] * len(found), index=found.index, dtype=object)
    )


def _headline(row: pd.Series, parent_headline: str | None) -> str | None:
    """``test_<headline>`` for a run (``oof_`` for cv, ``eval_`` for an evaluation); for a trial,
    the metric its search optimised.
    """
    if row.get(f"tags.{schema.PARENT}") is None or pd.isna(row.get(f"tags.{schema.PARENT}")):
        name = row.get("params.headline_metric")
        tags = {
            key.removeprefix("tags."): value
            for key, value in row.items()
            if key.startswith("tags.") and isinstance(value, str)
        }
        return f"{schema.predicted_rows(tags)}_{name}" if isinstance(name, str) else None
    metric = row.get(f"tags.{schema.SEARCH_METRIC}")
    if isinstance(metric, str):
        return metric
    # Trials logged before the tag existed: whichever of the parent's metrics the trial has.
    for prefix in ("valid_", "cv_"):
        if isinstance(parent_headline, str) and pd.notna(
            row.get(f"metrics.{prefix}{parent_headline}")
        ):
            return f"{prefix}{parent_headline}"
    return None


def run_kind(tags: dict) -> str:
    """What made a run, in words."""
    kind = schema.kind(tags)
    if kind == "trial":
        return f"search trial of {tags[schema.PARENT][:8]}"
    if kind == "search":
        return f"search {tags[schema.SEARCH]!r}"
    if kind == "cv":
        return f"cross-validation, {tags[schema.CV]}"
    if kind == "evaluation":
        return (
            f"evaluation of {tags[schema.EVALUATED_MODEL]} on "
            f"{tags.get(schema.EVALUATION_DATA, 'unknown data')}"
        )
    if kind == "cascade":
        return (
            f"cascade of {tags[schema.CASCADE_FAST][:8]} (fast) and "
            f"{tags[schema.CASCADE_ACCURATE][:8]} (accurate)"
        )
    if kind == "benchmark":
        return f"benchmark {tags[schema.BENCHMARK]}"
    if kind == "selection":
        return f"selection for annotation, scored by {tags[schema.SELECTED_WITH]}"
    trained = (
        f"training on few rows, cross-validated ({tags[schema.SMALL_DATA]})"
        if tags.get(schema.SMALL_DATA)
        else "training"
    )
    if tags.get(schema.REPRODUCES):
        return f"{trained}, reproducing {tags[schema.REPRODUCES][:8]}"
    return trained


def _fingerprint_line(run_id: str, tags: dict) -> str:
    """Whether the run's logged model is the one it recorded: the model's manifest against the
    run's fingerprint tag."""
    recorded = tags.get(schema.MODEL_FILE_SHA256)
    found = store.logged_manifest_sha256(run_id)
    if recorded is None:
        return (
            "NO FINGERPRINT recorded: predict, evaluate and register refuse this model; "
            "retrain it with `stance reproduce RUN`"
        )
    if found is None:
        return (
            "the model is not in this version's format (a pickle of an earlier version): "
            "convert it with `stance convert runs:/RUN/model NEW --trust-pickle`"
        )
    if found != recorded:
        return (
            f"MISMATCH: the stored model's manifest has sha256 {found[:16]}..., the run "
            f"recorded {recorded[:16]}...; the model was changed after training and is refused"
        )
    return f"the stored model matches the run's fingerprint ({recorded[:16]}...)"


def describe_run(run_id: str) -> str:
    """A run in words for the terminal: what made it, from which code, what it holds, and its
    model card (a training run's) or else its metrics. Spares a terminal user the MLflow UI."""
    run = store.run_info(run_id)
    tags, full_id = run["tags"], run["run_id"]
    started = pd.Timestamp(run["start_time"], unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    code_tags = tags
    if "git_commit" not in tags and tags.get(schema.PARENT):  # a trial logs only what it searched
        code_tags = store.run_info(tags[schema.PARENT])["tags"]
    commit, dirty = code_tags.get("git_commit", "unknown"), code_tags.get("git_dirty") == "true"
    lines = [
        f"run:        {full_id}",
        f"experiment: {tags.get(schema.EXPERIMENT, '-')}",
        f"kind:       {run_kind(tags)}",
        f"started:    {started}",
        f"code:       git {commit[:12]}{' with uncommitted changes' if dirty else ''}",
        f"artifacts:  {', '.join(store.artifact_paths(full_id)) or 'none'}",
    ]
    finished = run["status"] == "FINISHED"
    if not finished:
        status = run["status"]
        if status == "RUNNING" and store.process_gone(tags):
            status = (
                f"{GONE} (RUNNING in the store, but its process {tags[schema.PID]} on this host "
                "has ended)"
            )
        lines.insert(3, f"status:     {status}")
    if store.has_artifact(full_id, schema.MODEL_CARD):
        # `stance train` logs the card, then the model, which MLflow keeps outside the run's
        # artifacts.
        if finished:
            lines.append(f"model:      runs:/{full_id}/model")
            lines.append(f"checked:    {_fingerprint_line(full_id, tags)}")
        else:  # the store failed between the card and the model: training kept the model on disk
            lines.append(
                "model:      not logged; `stance train` kept it as "
                f"{tracking.UNLOGGED_FOLDER / full_id / tracking.UNLOGGED_FILES['model']} where it "
                "ran"
            )
        return "\n".join([*lines, "", store.read_artifact(full_id, schema.MODEL_CARD).rstrip()])
    kept = tracking.UNLOGGED_FOLDER / full_id
    if (
        not finished and kept.is_dir()
    ):  # `stance cv` or `evaluate` saved what the failed store did not take
        lines.append(
            f"kept:       {kept}/ ({', '.join(sorted(path.name for path in kept.iterdir()))}), not "
            "logged"
        )
    metrics = run["metrics"]
    width = max((len(name) for name in metrics), default=0)
    listed = [f"  {name:<{width}}  {_figure(metrics[name])}" for name in sorted(metrics)] or [
        "  none"
    ]
    settings = []
    if schema.kind(tags) in ("selection", "benchmark"):  # no model card: its settings are params
        params = run["params"]
        width = max((len(name) for name in params), default=0)
        settings = ["", "params:", *[f"  {k:<{width}}  {params[k]}" for k in sorted(params)]]
    return "\n".join([*lines, *settings, "", "metrics:", *listed])


def _figure(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}"


@dataclass
class Comparison:
    params: pd.DataFrame  # param x run, only those that differ
    metrics: pd.DataFrame  # metric x run, only those that differ
    test: dict | None  # the paired bootstrap, for two runs on the same test rows


def compare_runs(run_ids: list[str]) -> Comparison:
    if len(run_ids) < 2:
        raise StanceError("compare needs at least two run ids.")
    runs = [store.run_info(r) for r in run_ids]
    columns = [run["run_id"][:8] for run in runs]

    def differing(kind: str) -> pd.DataFrame:
        keys = sorted(set().union(*(run[kind] for run in runs)))
        rows = {k: [run[kind].get(k) for run in runs] for k in keys}
        # A run's fold_* metrics hold one value per fold; the last fold's alone would mislead here.
        rows = {
            k: v
            for k, v in rows.items()
            if len({json.dumps(x) for x in v}) > 1
            and not k.endswith("_seconds")
            and not k.startswith("fold_")
        }
        return pd.DataFrame.from_dict(rows, orient="index", columns=columns)

    test = None
    if len(runs) == 2:
        test = _paired_test(runs)
    return Comparison(differing("params"), differing("metrics"), test)


def _paired_test(runs: list[dict]) -> dict | None:
    """A paired bootstrap on the rows both runs predicted: the test split, or for two
    `stance cv` runs, their out-of-fold predictions of the training split."""
    if any(r["tags"].get(schema.SMALL_DATA) for r in runs):
        # Their out-of-fold predictions come from folds each run drew with its own seed: a
        # bootstrap over rows would take the luck of the folds for a difference of the models.
        return {
            "skipped": "a run trained on few rows is judged by cross-validation, whose folds "
            "differ between runs; compare their estimates and intervals instead"
        }
    rows = {schema.predicted_rows(r["tags"]) for r in runs}
    split = rows.pop() if len(rows) == 1 else "test"
    rows = {"oof": "out-of-fold training rows", "eval": "evaluated rows", "test": "test rows"}[
        split
    ]
    artifact = schema.predictions(split)
    for run in runs:
        if not store.has_artifact(run["run_id"], artifact):
            return {
                "skipped": f"run {run['run_id'][:8]} logged no predictions of the {rows} "
                "(search runs and trials log none; cv runs log out-of-fold rows and evaluation "
                "runs the rows they scored, so pair a run with one of its kind)"
            }
    first, second = (
        pd.read_csv(
            StringIO(store.read_artifact(r["run_id"], artifact)),
            dtype=str,
            keep_default_na=False,
        )
        for r in runs
    )
    if (
        first["id"].tolist() != second["id"].tolist()
        or first["label"].tolist() != second["label"].tolist()
    ):
        return {
            "skipped": f"the two runs did not predict the same {rows}, so they cannot be compared "
            "pairwise"
        }
    if split == "eval":  # an evaluation logs the model's labels and headline, not a config
        headline, labels = (
            runs[0]["params"]["headline_metric"],
            tuple(json.loads(runs[0]["params"]["labels"])),
        )
        if json.loads(runs[1]["params"]["labels"]) != list(labels):
            return {
                "skipped": "the two evaluated models predict different labels, so they cannot be "
                "compared pairwise"
            }
    else:
        config = logged_config(runs[0]["run_id"])
        headline, labels = config.headline_metric, config.labels
    metric = headline if runs[1]["params"].get("headline_metric") == headline else "macro_f1"
    result = paired_bootstrap(
        first["label"], first["predicted"], second["predicted"], labels, metric
    )
    result["runs"] = (runs[0]["run_id"], runs[1]["run_id"])
    result["rows"] = rows
    return result


def logged_config(run_id: str) -> Config:
    """The resolved config a run logged, loaded back with its types."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(store.read_artifact(run_id, schema.CONFIG), encoding="utf-8")
        return Config.from_toml(path)


def reproduce_run(run_id: str, data_dir: str | None = None, log=print) -> tuple[dict, dict, dict]:
    """Retrain a run from its logged config after checking that its data is unchanged.

    Returns (old metrics, new metrics, facts about the original run)."""
    # Imported here: training brings scikit-learn and matplotlib (0.5 s), which `stance runs`,
    # `show` and `compare`, the other users of this module, never need.
    from train.training import train

    original = store.run_info(run_id)
    run_id = original["run_id"]
    _refuse_runs_not_from_train(original)
    config = logged_config(run_id)
    manifest = json.loads(store.read_artifact(run_id, schema.MANIFEST))
    root = data_root(data_dir)
    current = {
        str(Path(f.path).relative_to(root))
        if Path(f.path).is_relative_to(root)
        else f.path: f.sha256
        for f in load_dataset(config.data, root).files
    }
    for logged in manifest["files"]:
        relative = logged.get("relative_path", logged["path"])
        now = current.get(relative)
        if now is None:
            raise DataError(
                f"{root / relative}: the run read this file, but it is not there now. Point "
                "--data-dir at the data the run used."
            )
        if now != logged["sha256"]:
            raise DataError(
                f"{root / relative} changed since run {run_id}: sha256 was {logged['sha256']}, is "
                f"{now}. "
                "Restore the original file to reproduce the run, or train anew with `stance train`."
            )
    read_then = {logged.get("relative_path", logged["path"]) for logged in manifest["files"]}
    if added := sorted(set(current) - read_then):
        raise DataError(
            f"{root / added[0]}: the experiment reads this file now, but run {run_id} did not "
            f"({len(added)} such file(s)); a folder in data.path has gained files since. Move them "
            "out to reproduce the run, or train anew with `stance train`."
        )
    dirty = original["tags"].get("git_dirty") == "true"
    if dirty:
        log(
            f"warning: run {run_id} was made from a work tree with uncommitted changes; its code "
            f"may differ from commit {original['tags'].get('git_commit')}."
        )
    result = train(config, root, log=log, extra_tags={schema.REPRODUCES: run_id})
    again = store.run_info(result.run_id)
    machine = {
        "then": {key: original["tags"].get(tag) for key, tag in schema.MACHINE_TAGS.items()},
        "now": {key: again["tags"].get(tag) for key, tag in schema.MACHINE_TAGS.items()},
    }
    return (
        original["metrics"],
        again["metrics"],  # as logged, like the original's
        {
            "dirty": dirty,
            "new_run_id": result.run_id,
            "commit": original["tags"].get("git_commit"),
            "commit_now": again["tags"].get("git_commit"),
            "machine": hardware.differences(machine["then"], machine["now"]),
            # older runs did not record it, and a machine without /proc/cpuinfo says "unknown"
            "machine_known": machine["then"]["cpu_flags"] not in (None, "unknown"),
            # The code is known to be the same only from one clean, known commit to itself, with
            # the same library versions (the BLAS library's own version is part of "machine").
            "same_code": (
                original["tags"].get("git_commit") not in (None, "unknown")
                and original["tags"].get("git_commit") == again["tags"].get("git_commit")
                and original["tags"].get("git_dirty") == "false"
                and again["tags"].get("git_dirty") == "false"
                and _versions(original["tags"]) == _versions(again["tags"])
                and hardware.blas_parts(original["tags"].get(schema.BLAS) or "", 1)
                == hardware.blas_parts(again["tags"].get(schema.BLAS) or "", 1)
            ),
        },
    )


def _versions(tags: dict) -> dict:
    return {key: value for key, value in tags.items() if key.startswith("version.")}


def _refuse_runs_not_from_train(run: dict) -> None:
    """Search runs, trials and cv runs do not hold what `stance train` logs, so a retrain
    could not match them."""
    parent = run["tags"].get(schema.PARENT)
    if parent:
        raise StanceError(
            f"Run {run['run_id']} is a trial of search run {parent}: it logged only the parameters "
            "it tried and its "
            "validation scores, not a config to retrain. Reproduce the search's choice with "
            "`stance train best_config.toml` "
            f"(an artifact of run {parent}), then reproduce that run."
        )
    if run["tags"].get(schema.CV):
        raise StanceError(
            f"Run {run['run_id']} is a `stance cv` run ({run['tags'][schema.CV]}), not a trained "
            "model: run "
            "`stance cv` again on its config.toml (an artifact of the run) with the same --folds "
            "and --group-by."
        )
    if run["tags"].get(schema.EVALUATED_MODEL):
        raise StanceError(
            f"Run {run['run_id']} is a `stance evaluate` run: it scored model "
            f"{run['tags'][schema.EVALUATED_MODEL]} on "
            f"{run['tags'].get(schema.EVALUATION_DATA)}, and trained nothing. Run that `stance "
            "evaluate` again, or reproduce the run that trained the model."
        )
    if run["tags"].get(schema.CASCADE_ACCURATE):
        fast, accurate = run["tags"][schema.CASCADE_FAST], run["tags"][schema.CASCADE_ACCURATE]
        raise StanceError(
            f"Run {run['run_id']} is a `stance cascade` run: it trained nothing, but joined the "
            f"models of runs {fast} and {accurate}. Reproduce each of them, then run `stance "
            "cascade FAST ACCURATE` on the new runs with the same --max-loss."
        )
    if run["tags"].get(schema.SEARCH):
        raise StanceError(
            f"Run {run['run_id']} is a `stance search` run: its config.toml is the experiment it "
            "searched, and its test "
            "metrics come from the best trial refitted on train + valid. Train the chosen "
            "configuration with "
            f"`stance train best_config.toml` (an artifact of this run), then reproduce that run."
        )


def side_by_side(old: dict, new: dict) -> pd.DataFrame:
    keys = sorted(k for k in set(old) | set(new) if not k.endswith("_seconds"))
    table = pd.DataFrame(
        {
            "metric": keys,
            "original": [old.get(k) for k in keys],
            "reproduced": [new.get(k) for k in keys],
        }
    )
    table["same"] = table["original"] == table["reproduced"]
    return table
