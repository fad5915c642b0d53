"""Small in-memory fixtures shared by the test suite."""

from __future__ import annotations

import os
from pathlib import Path

from train import hardware

# The kernels `stance` pins before numpy loads (train/hardware.py), here too: tests compare what
# they compute in-process with what `stance` subprocesses compute, to the byte.
if not hardware.pin_kernels() and hardware.PINNED_NEEDS <= hardware._cpu_flags():
    # Something loaded numpy first: `stance` subprocesses would compute other last bits.
    assert all(name in os.environ for name in hardware.PINNED_KERNELS), (
        "numpy was loaded before tests/conftest.py could pin its kernels; run pytest as the "
        "README says"
    )

import pandas as pd  # noqa: E402 (after the pin)
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _sentences():
    favor = [
        "The carbon tax is a fair and clever way to cut pollution.",
        "Pricing carbon rewards firms that invest in clean energy!",
        "We should back the carbon tax, it works.",
        "A carbon dividend leaves most families better off.",
        "The strikes were a measured and lawful reply.",
        "Tehran was right to answer the attack on its consulate.",
        "The missile response restored deterrence, supporters say.",
        "The strikes were proportionate and announced in advance.",
    ]
    against = [
        "The carbon tax is a cruel burden on rural families.",
        "This tax will push factories abroad and kill jobs.",
        "Scrap the carbon tax before it does more damage!",
        "Nobody voted for a tax on getting to work.",
        "The missile strikes were reckless and dangerous.",
        "Firing missiles at a neighbour is escalation, not defence.",
        "The barrage endangered thousands of civilians.",
        "The strikes should be condemned by every government.",
    ]
    none = [
        "The carbon tax starts at forty dollars per tonne.",
        "The finance ministry published revenue estimates on Tuesday.",
        "A committee will hear evidence on the tax next month.",
        "The levy covers transport and heating fuels.",
        "The launches began shortly before midnight.",
        "Airlines rerouted flights while the airspace was closed.",
        "The Security Council scheduled an emergency session.",
        "Most projectiles were intercepted, officials said.",
    ]
    rows = []
    for label, texts in (("FAVOR", favor), ("AGAINST", against), ("NONE", none)):
        for i, text in enumerate(texts):
            target = "carbon tax" if i < 4 else "Iran's missile strikes"
            rows.append({"text": text, "target": target, "label": label})
    return pd.DataFrame(rows)


@pytest.fixture
def sentences() -> pd.DataFrame:
    """24 labelled sentences, two targets, three labels, balanced."""
    return _sentences()


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    """An MLflow tracking store under tmp_path, so tests never touch ./mlflow.db."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def store_fails_at(monkeypatch):
    """Make one of train.tracking's logging calls fail, by default as a tracking server
    that went away would; ``error`` gives another failure (a full disk)."""
    from mlflow.exceptions import MlflowException

    from train import tracking

    def fail(call: str, error: Exception | None = None) -> None:
        def failing(*args, **kwargs):
            raise error or MlflowException("the tracking server went away.")

        monkeypatch.setattr(tracking, call, failing)

    return fail


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> Path:
    """The sample experiment's model (word n-grams only, for speed), fitted without MLflow and
    saved as a model folder."""
    from train.config import Config
    from train.data import load_dataset, split_dataset
    from train.models import runtime_versions
    from train.training import fit_stance_model

    config = Config.from_toml(REPO / "experiments" / "sample.toml", ["features.char=false"])
    rows = load_dataset(config.data, REPO / "data").rows
    train = split_dataset(rows, config.split, config.seed)["train"]
    # With the versions a logged model's requirements are pinned to (tests log this model too).
    model = fit_stance_model(config, train, runtime_versions())
    return model.save(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def shared_data() -> Path:
    """The public datasets in ../shared/data (or $STANCE_DATA_DIR).

    Missing data skips the test on a laptop but fails it in CI, where a skip
    would hide that the loaders were never exercised.
    """
    # Absolute, since tests that use a tracking store run in their own folder.
    root = Path(os.environ.get("STANCE_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
    if not (root / "semeval2016-tweeteval").is_dir():
        message = f"public datasets not found under {root}; set STANCE_DATA_DIR=../shared/data"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture
def embeddings_extra() -> None:
    """The optional sentence-embedding extra; CI installs it, so there a missing extra fails."""
    from features.embeddings import missing_extra

    if problem := missing_extra():
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def x86_emulator() -> list[str]:
    """The command that runs a program on an emulated Intel Haswell (AVX2 and FMA, no AVX-512),
    so that a test on this machine meets a second kind of CPU. CI installs qemu-user, so there
    a missing emulator fails; elsewhere it skips. A host below x86-64-v3 skips: its own kernels
    differ from Haswell's by design (benchmarks/RESULTS.md, the same numbers on every CPU)."""
    import platform
    import shutil
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"emulating an x86-64 CPU needs an x86-64 host, not {platform.machine()}")
    if not hardware.PINNED_NEEDS <= hardware._cpu_flags():
        pytest.skip("this CPU is not x86-64-v3: it is not expected to match a Haswell")
    if not (qemu := shutil.which("qemu-x86_64")):
        message = "qemu-x86_64 not found; install it with: apt-get install qemu-user"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    command = [qemu, "-cpu", "Haswell"]
    # QEMU before 7.2 emulates no AVX2: numpy would say so, and a comparison would mean nothing.
    probe = "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
    probe += "print(f['AVX2'] and f['FMA3'])"
    found = subprocess.run(
        [*command, sys.executable, "-c", probe], capture_output=True, text=True
    ).stdout.strip()
    if found != "True":
        pytest.fail(f"{qemu} -cpu Haswell does not emulate AVX2 and FMA ({found!r}); QEMU 7.2+")
    return command


@pytest.fixture
def as_if_encoder(model_path, embeddings_extra):
    """``as_if_encoder(runtime, versions)``: the sample model as if its features ran the sentence
    encoder on ``runtime`` and its training recorded ``versions``. What a model says about the
    encoder graph it was fitted on is read from its config and versions, not from its output."""
    import dataclasses

    from train.models import StanceModel

    def changed(runtime: str, versions: dict):
        model = StanceModel.load(model_path)
        features = {**model.config.get("features", {}), "embeddings": {"runtime": runtime}}
        config = {**model.config, "features": features}
        return dataclasses.replace(model, config=config, versions=versions)

    return changed


@pytest.fixture
def run_cli():
    """``main(argv)`` with stdout and stderr captured: returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from train.cli import main

    def run(*argv) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
        return code, out.getvalue(), err.getvalue()

    return run


def assert_distinct_trials_that_rerun_exactly(study, experiment_seed: int, train) -> None:
    """What a study shared by two processes must show: every trial scored once with its own
    parameters, two sampler seeds (the creator's is the experiment's), and a trial of the
    joining process rerun by ``stance train`` with its parameters giving its value exactly.
    ``train(overrides)`` runs that training and returns the run's validation macro-F1."""
    import json

    from train import schema
    from train.search import toml_literal

    scored = [t for t in study.trials if t.state.name == "COMPLETE"]
    keys = [json.dumps(t.params, sort_keys=True) for t in scored]
    assert len(set(keys)) == len(keys), keys
    seeds = {t.user_attrs[schema.SAMPLER_SEED] for t in study.trials}
    assert experiment_seed in seeds and len(seeds) == 2
    joined = next(t for t in scored if t.user_attrs[schema.SAMPLER_SEED] != experiment_seed)
    overrides = []
    for key, value in joined.params.items():
        value = json.loads(value) if isinstance(value, str) and value.startswith("[") else value
        overrides += ["--set", f"{key}={toml_literal(value)}"]
    assert train(overrides) == joined.value


@pytest.fixture
def search_command():
    """The command line of a `stance search` process on the sample experiment (its slow steps
    off), sharing ``study`` in ``storage``, for tests that start several at once."""
    import sys

    def command(storage: str, study: str, trials: int = 2) -> list[str]:
        return [
            sys.executable,
            "-c",
            "import sys; from train.cli import main; sys.exit(main(sys.argv[1:]))",
            "search",
            str(REPO / "experiments" / "sample.toml"),
            "--trials",
            str(trials),
            "--storage",
            storage,
            "--study-name",
            study,
            "--data-dir",
            str(REPO / "data"),
            "--set",
            "features.char=false",
            "--set",
            "features.sentiment=false",
        ]

    return command


@pytest.fixture
def messy_csv(tmp_path) -> Path:
    """The sample sentences with one row of each kind the local route rejects."""
    frame = pd.read_csv(
        Path(__file__).resolve().parents[1] / "data" / "sample" / "sentences.csv"
    ).rename(columns={"sentence": "text"})[["id", "text", "target"]]
    frame.loc[3, "text"] = ""
    frame.loc[5, "target"] = None
    frame.loc[8, "text"] = "NaN"
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    # A line with a field too many: rejected as malformed, with its line number.
    with path.open("a") as handle:
        handle.write('extra-1,"One field too many.",remote work,surplus\n')
    return path


@pytest.fixture
def stray_quote_csv(tmp_path):
    """A builder of a CSV file with a quote inside an unquoted field (row 1), then texts that span
    two lines: the share plan's count of quotation marks is off by one from row 1 on, so it cuts
    inside the quoted texts. ``empty_row`` adds a last row to reject; ``before`` rows come first,
    so that the first cuts are right and a later one is not."""

    def build(empty_row: bool = True, before: int = 0) -> Path:
        clean = "".join(f"Fur farms {i} should close,Ban on fur\n" for i in range(before))
        rows = [
            f'"The ban on fur {i} is fair,\nsaid the council {i}.",Ban on fur\n' for i in range(40)
        ]
        path = tmp_path / "stray.csv"
        end = ",x\n" if empty_row else ""
        stray = 'he said "no to the ban,Ban on fur\n'
        path.write_text("text,target\n" + clean + stray + "".join(rows) + end)
        return path

    return build
