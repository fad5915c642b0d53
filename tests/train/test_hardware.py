"""The machine a run records (train/hardware.py), and what `stance reproduce` makes of it."""

import sys

import pytest

from train import hardware

AVX2 = {"cpu": "A", "cpu_flags": "sse4_2 avx avx2 fma", "blas": "openblas 0.3 Haswell"}
AVX512 = {
    "cpu": "B",
    "cpu_flags": "sse4_2 avx avx2 fma avx512f avx512_vnni",
    "blas": "openblas 0.3 SkylakeX",
}


def test_this_machine_is_recorded_with_the_flags_that_choose_kernels():
    import numpy  # noqa: F401 (loads the BLAS that numpy and scikit-learn use)

    found = hardware.machine()
    assert found["cpu"]
    assert set(found["cpu_flags"].split()) <= set(hardware.KERNEL_FLAGS)
    assert found["blas"] != "none loaded"


def test_differences_name_the_instruction_sets_and_blas_that_changed():
    assert hardware.differences(AVX2, AVX2) == []
    assert hardware.differences(AVX512, AVX2) == [
        "instruction sets: avx512_vnni only then, avx512f only then",
        "BLAS kernels: openblas 0.3 SkylakeX then, openblas 0.3 Haswell here",
    ]
    # A newer BLAS on the same CPU is a library upgrade, not the hardware.
    upgraded = dict(AVX2, blas="openblas 0.4 Haswell")
    assert hardware.differences(AVX2, upgraded) == []
    assert hardware.blas_parts(upgraded["blas"], 1) != hardware.blas_parts(AVX2["blas"], 1)
    # A run from before machines were recorded differs in nothing known.
    assert hardware.differences({"cpu": None, "cpu_flags": None, "blas": None}, AVX2) == []


@pytest.mark.parametrize(
    ("machine", "commit_now", "said"),
    [
        (["instruction sets: avx512f only then"], "abc", "comes from the hardware"),
        (["instruction sets: avx512f only then"], "def", "not known to be the same"),
        ([], "abc", "the difference comes from the code or the library versions"),
    ],
)
def test_reproduce_says_where_a_difference_comes_from(
    monkeypatch, run_cli, machine, commit_now, said
):
    from train import runs

    facts = {
        "dirty": False,
        "new_run_id": "r2",
        "commit": "abc",
        "commit_now": commit_now,
        "machine": machine,
        "machine_known": True,
        "same_code": commit_now == "abc",
    }
    monkeypatch.setattr(
        runs, "reproduce_run", lambda *a, **k: ({"test_f_avg": 0.70}, {"test_f_avg": 0.71}, facts)
    )
    code, out, _ = run_cli("reproduce", "r1")
    assert code == 0 and "1 metrics differ" in out and said in out


def test_differences_name_numpy_loops_that_changed():
    then = dict(AVX512, numpy_simd="X86_V3 X86_V4 baseline(X86_V2)")
    now = dict(AVX512, numpy_simd="X86_V3 baseline(X86_V2)")
    assert hardware.differences(then, now) == [
        "numpy loops: X86_V3 X86_V4 baseline(X86_V2) then, X86_V3 baseline(X86_V2) here"
    ]
    assert hardware.differences(then, then) == []
    # Other instruction sets on the same pinned kernels choose only exact int8 products.
    pinned = {"blas": "openblas 0.3 Haswell", "numpy_simd": "X86_V3 baseline(X86_V2)"}
    assert hardware.differences(dict(AVX512, **pinned), dict(AVX2, **pinned)) == []


PINNED_RUN = """
import sys
from train.cli import main
try:
    main(["--version"])
except SystemExit:
    pass
from train import hardware
found = hardware.machine()
print(found["blas"], "|", found["numpy_simd"])
"""


def _run_stance_then_read_the_kernels(env_extra: dict) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {key: value for key, value in os.environ.items() if key not in hardware.PINNED_KERNELS}
    env.update(env_extra, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run(
        [sys.executable, "-c", PINNED_RUN], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]  # after `stance --version`


def test_stance_runs_the_avx2_kernels_of_openblas_and_numpy_on_any_avx2_cpu():
    # Left to choose, OpenBLAS and numpy took their AVX-512 kernels here, and fnc1.toml trained
    # to another test accuracy than on AVX2 (RESULTS, the same numbers on every CPU).
    if not hardware.PINNED_NEEDS <= hardware._cpu_flags():
        pytest.skip("this CPU is not x86-64-v3: its kernels are its own")
    blas, numpy_simd = _run_stance_then_read_the_kernels({}).split(" | ")
    assert "Haswell" in blas and all(
        "Haswell" in entry for entry in blas.split("; ") if entry.startswith("openblas")
    )
    assert "X86_V4" not in numpy_simd.split() and "X86_V3" in numpy_simd.split()
    # A variable the user set is theirs.
    blas, numpy_simd = _run_stance_then_read_the_kernels(
        {"OPENBLAS_CORETYPE": "Sandybridge", "NPY_DISABLE_CPU_FEATURES": ""}
    ).split(" | ")
    assert "Sandybridge" in blas
    if "avx512f" in hardware._cpu_flags():
        assert "X86_V4" in numpy_simd.split()


def test_kernels_are_not_pinned_once_numpy_is_loaded_or_below_x86_64_v3(monkeypatch):
    import numpy  # noqa: F401 (this process has numpy loaded, as `main(argv)` in tests does)

    environ = {}
    assert hardware.pin_kernels(environ) is False and environ == {}
    monkeypatch.delitem(sys.modules, "numpy")
    v3 = {"avx", "avx2", "fma", "bmi1", "bmi2", "abm", "movbe", "f16c"}
    # OpenBLAS's Haswell kernels would not run without AVX2 or FMA, and numpy's X86_V3 loops
    # fall back to its baseline where one of their flags is hidden (a VM's CPU model may).
    for hidden in ("avx2", "fma", "movbe"):
        monkeypatch.setattr(hardware, "_cpu_flags", lambda hidden=hidden: v3 - {hidden})
        assert hardware.pin_kernels(environ) is False and environ == {}, hidden
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: v3)
    assert hardware.pin_kernels(environ) is True and environ == hardware.PINNED_KERNELS
    mine = {"OPENBLAS_CORETYPE": "", "NPY_DISABLE_CPU_FEATURES": ""}
    assert hardware.pin_kernels(dict(mine)) is True
    kept = dict(mine)
    hardware.pin_kernels(kept)
    assert kept == mine


FIT_AND_PREDICT = """
import sys
from pathlib import Path

from train import hardware

hardware.pin_kernels()  # as `stance` does before any command
import numpy as np

from train.config import Config
from train.data import load_dataset, split_dataset
from train.training import fit_stance_model

repo = Path(sys.argv[2])
config = Config.from_toml(repo / "experiments" / "sample.toml", [])
parts = split_dataset(load_dataset(config.data, repo / "data").rows, config.split, config.seed)
found = fit_stance_model(config, parts["train"], {}).predict(parts["test"])
np.save(sys.argv[1], found.select_dtypes("number").to_numpy())
"""


def test_a_model_fitted_on_a_cpu_without_avx_512_is_the_same_bit_for_bit(tmp_path, x86_emulator):
    # The sample experiment fitted here and on an emulated Haswell: every probability equal.
    # Before, OpenBLAS's SkylakeX kernels and numpy's AVX-512 loops moved all of them (by up to
    # 8e-13 here; on fnc1.toml, the test accuracy).
    import os
    import subprocess
    from pathlib import Path

    import numpy as np

    repo = Path(__file__).resolve().parents[2]
    env = {key: value for key, value in os.environ.items() if key not in hardware.PINNED_KERNELS}
    env.update(PYTHONPATH=str(repo), OPENBLAS_NUM_THREADS="1")
    for name, emulator in (("here", []), ("there", x86_emulator)):
        done = subprocess.run(
            [*emulator, sys.executable, "-c", FIT_AND_PREDICT, str(tmp_path / name), str(repo)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    here, there = np.load(tmp_path / "here.npy"), np.load(tmp_path / "there.npy")
    assert here.shape == (63, 3)
    np.testing.assert_array_equal(here, there)
