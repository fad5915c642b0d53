"""`stance search`: hyperparameter search with Optuna, one MLflow child run per trial.

Trials are scored on the validation split, or by k-fold cross-validation on the
training split (``cv``); the test split is touched once, by the best
configuration refitted on train + validation, under the parent run.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from train import crossval, progress, schema, store, tracking
from train.config import Config
from train.data import check_training_labels, load_dataset, split_dataset
from train.errors import ConfigError
from train.fitting import fit_stance_model
from train.metrics import compute_metrics, metric_names
from train.models import check_parameters, runtime_versions
from train.sources import data_root


@dataclass
class SearchResult:
    parent_run_id: str
    study_name: str
    best_params: dict
    best_value: float
    default_value: float | None
    test_metrics: dict
    best_overrides: list[
        str
    ]  # the --set arguments that turn the experiment into the best configuration


def toml_literal(value) -> str:
    """A value as the right-hand side of a ``--set`` override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return repr(value)


def suggest(trial: optuna.Trial, key: str, spec) -> object:
    if "choices" in spec:
        # Optuna stores categorical choices as JSON-able scalars; lists travel as their JSON text.
        options = [
            json.dumps(list(c)) if isinstance(c, (list, tuple)) else c for c in spec["choices"]
        ]
        picked = trial.suggest_categorical(key, options)
        return json.loads(picked) if isinstance(picked, str) and picked.startswith("[") else picked
    low, high = spec["low"], spec["high"]
    if isinstance(low, int) and isinstance(high, int) and not spec.get("log"):
        return trial.suggest_int(key, low, high, step=int(spec.get("step", 1)))
    return trial.suggest_float(key, float(low), float(high), log=bool(spec.get("log", False)))


def _score(
    config: Config, splits: dict, cv: int | None, group_by: str | None = None, jobs: int = 1
) -> dict[str, float]:
    """Validation metrics of one configuration, or the mean and spread over ``cv`` folds of train
    (grouped as ``group_by`` says; by default by target when the experiment splits by target),
    fitted ``jobs`` folds at a time."""
    if not cv:
        model = fit_stance_model(config, splits["train"])
        frame = splits["valid"]
        return compute_metrics(frame["label"], model.predict(frame)["label"], config.labels)
    grouping = group_by or crossval.default_grouping(config)
    per_fold, _ = crossval.cross_validate(config, splits["train"], cv, grouping, jobs=jobs)
    return crossval.summarise(per_fold)


# A process sharing a study beats every HEARTBEAT_S while it runs a trial; a trial without a
# beat for STALE_AFTER_S belongs to a process that died, and is marked FAIL rather than waited for.
HEARTBEAT_S = 10
STALE_AFTER_S = 60
WAIT_POLL_S = 1.0


def sampler_seed(seed: int, draw: int) -> int:
    """The seed of a process's sampler: the experiment's seed alone for the process that created
    the study (``draw`` 0), mixed with the process's own draw for every process that joined it.
    Joining processes seeded alike would propose the same trials in lockstep."""
    if draw == 0:
        return seed
    return int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])


def _open_study(
    storage: str | None, name: str, seed: int, attempts: int = 5
) -> tuple[optuna.Study, int]:
    """Create the study, or join it, and this process's sampler seed.

    The process that creates a study (always, without ``storage``) samples with the
    experiment's seed, so one process is deterministic; a process that finds the study there
    draws its own number and samples with it mixed in (:func:`sampler_seed`), and every trial
    records its seed. Processes started together on a new database race to create Optuna's
    tables; the loser of that race finds them on its next attempt.
    """
    for attempt in range(attempts):
        try:
            backend = (
                optuna.storages.RDBStorage(
                    storage, heartbeat_interval=HEARTBEAT_S, grace_period=STALE_AFTER_S
                )
                if storage is not None
                else None
            )
            try:
                study = optuna.create_study(
                    storage=backend,
                    study_name=name,
                    direction="maximize",
                    sampler=optuna.samplers.TPESampler(seed=seed),
                )
                return study, seed
            except optuna.exceptions.DuplicatedStudyError:
                joined = sampler_seed(seed, secrets.randbits(32) | 1)
                sampler = optuna.samplers.TPESampler(seed=joined)
                return optuna.load_study(study_name=name, storage=backend, sampler=sampler), joined
        except Exception as error:  # SQLAlchemy's IntegrityError/OperationalError, by backend
            if (
                storage is None
                or attempt == attempts - 1
                or "alembic" not in str(error)
                and "already exists" not in str(error)
                and "UNIQUE" not in str(error)
            ):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _same_params(study: optuna.Study, trial: optuna.Trial) -> int | None:
    """The number of an earlier trial, finished or still running in any process, that has the
    parameters ``trial`` was given: a small discrete space runs out of new points, and
    scoring one twice wastes the time and counts one configuration twice. Only earlier
    numbers count, so that of two processes proposing one point at once, one scores it."""
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number < trial.number and other.params == trial.params:
            return other.number
    return None


def _wait_for_other_processes(study: optuna.Study, log) -> None:
    """Wait until no trial of the study is running: trials that other processes sharing it are
    still scoring count toward the best, and every process of one study should name the same
    best. A trial whose process died stops beating and is failed after ``STALE_AFTER_S``."""
    waiting = None
    while True:
        optuna.storages.fail_stale_trials(study)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if not running:
            return
        if running != waiting:
            log(f"waiting for {running} trials that other processes are running in this study")
            waiting = running
        time.sleep(WAIT_POLL_S)


def run_search(
    experiment: str | Path,
    trials: int,
    overrides: list[str] = (),
    jobs: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    cv: int | None = None,
    data_dir: str | None = None,
    log=print,
    group_by: str | None = None,
    show_progress: bool | None = False,
) -> SearchResult:
    crossval.check_counts(cv, jobs)
    base = Config.from_toml(experiment, list(overrides))
    check_parameters(base)
    store.configure()  # a store that cannot be opened stops the command before the data is read
    space = base.search["space"]
    if not space:
        raise ConfigError(
            f"{experiment} declares no search space; add e.g. [search.space] clf__C = "
            f"{{ low = 0.01, high = 100, log = true }}."
        )
    metric = base.search["metric"] or base.headline_metric
    if metric not in metric_names(base.labels):
        raise ConfigError(
            f"search.metric {metric!r} does not apply to labels {list(base.labels)}; choose one of "
            f"{metric_names(base.labels)}."
        )

    def configured(params: dict) -> Config:
        return Config.from_toml(
            experiment, list(overrides) + [f"{k}={toml_literal(v)}" for k, v in params.items()]
        )

    for key, spec in space.items():  # every key must be a valid override before any trial runs
        configured(
            {key: json.loads(json.dumps(spec["choices"][0])) if "choices" in spec else spec["low"]}
        )

    root = data_root(data_dir)
    data = load_dataset(base.data, root)
    splits = split_dataset(data.rows, base.split, base.seed)
    check_training_labels(base.labels, splits["train"]["label"])  # before a run exists
    # With --cv, jobs fit each trial's folds in processes, as `stance cv --jobs` does: true
    # parallelism, and trials stay in order, so TPE proposes the same ones as with one job.
    # Without it, trials run in threads (validation scores have no folds to spread).
    fold_jobs, trial_jobs = (jobs, 1) if cv else (1, jobs)
    name = study_name or f"{base.name}-search"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, seed = _open_study(storage, name, base.seed)
    if seed != base.seed:
        log(f"joined study {name!r}: this process samples with seed {seed}")
    results = {}  # the refitted best model, kept on disk if the store fails before it is logged
    with tracking.command_run(base.name, results, {schema.SEARCH: name}) as parent_id:
        tracking.log_config(base)
        tracking.log_data(data, splits, root)
        default = _score(base, splits, cv, group_by, fold_jobs)[metric]
        log(f"untuned default: {'cv' if cv else 'valid'} {metric} {default:.4f}")

        def objective(trial: optuna.Trial) -> float:
            params = {key: suggest(trial, key, spec) for key, spec in space.items()}
            trial.set_user_attr(schema.SAMPLER_SEED, seed)
            earlier = _same_params(study, trial)
            if earlier is not None:
                log(f"trial {trial.number}: the parameters of trial {earlier}, not scored again")
                raise optuna.TrialPruned()
            started = time.perf_counter()
            metrics = _score(configured(params), splits, cv, group_by, fold_jobs)
            prefix = "cv_" if cv else "valid_"
            tracking.log_child_run(
                parent_id,
                f"trial-{trial.number}",
                params,
                {f"{prefix}{k}": v for k, v in metrics.items()}
                | {"seconds": time.perf_counter() - started},
                tags={
                    schema.EXPERIMENT: base.name,
                    schema.SEARCH_METRIC: f"{prefix}{metric}",
                    schema.SAMPLER_SEED: str(seed),
                },
            )
            log(f"trial {trial.number}: {metric} {metrics[metric]:.4f} {params}")
            return metrics[metric]

        bar = progress.bar(show_progress, trials, "trials", "searching", log)
        log = bar.log  # lines above the bar, not through it

        def advance(study, trial) -> None:
            bar.update(1)

        try:
            study.optimize(objective, n_trials=trials, n_jobs=trial_jobs, callbacks=[advance])
        finally:
            bar.close()
        if storage is not None:
            _wait_for_other_processes(study, log)
        best = study.best_trial
        best_params = {
            key: suggest(optuna.trial.FixedTrial(best.params), key, spec)
            for key, spec in space.items()
        }

        # The one look at the test split: the best configuration, refitted on train + validation.
        # refit_on_valid goes into the logged best_config.toml, so that `stance train` on it
        # fits the same rows and gives the same test metrics.
        best_overrides = list(overrides) + [
            f"{k}={toml_literal(v)}" for k, v in best_params.items()
        ]
        if not base.model.refit_on_valid:
            best_overrides.append("model.refit_on_valid=true")
        final = Config.from_toml(experiment, best_overrides)
        started = time.perf_counter()
        model = results["model"] = fit_stance_model(
            final,
            pd.concat([splits["train"], splits["valid"]], ignore_index=True),
            runtime_versions(),
        )
        test = splits["test"]
        test_metrics = compute_metrics(
            test["label"], model.predict(test)["label"], final.labels, test["target"]
        )
        results["metrics"] = {f"test_{k}": v for k, v in test_metrics.items()}
        tracking.log_search_result(
            best_params,
            best.value,
            default,
            {f"test_{k}": v for k, v in test_metrics.items()}
            | {"refit_seconds": time.perf_counter() - started},
            len(study.trials),
            final.to_toml(),
        )
        tracking.log_model(
            model, splits["train"][["text", "target"]].head(3).reset_index(drop=True)
        )
    return SearchResult(
        parent_id, name, best_params, best.value, default, test_metrics, best_overrides
    )
