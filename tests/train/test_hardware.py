"""The machine a run records (train/hardware.py), and what `stance reproduce` makes of it."""

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
