"""The machine a run ran on, as far as it moves the numbers. The CPU's instruction sets decide
which kernels run: onnxruntime's int8 matrix products (AVX2, AVX-512, VNNI paths), the BLAS
of numpy and scikit-learn (OpenBLAS picks a core type by them) and numpy's own loops. Kernels of
different sets round differently in the last bits, and a solver or a threshold can turn that
into a changed metric. :func:`pin_kernels` gives every CPU with AVX2 and FMA the same BLAS and
numpy kernels; every run records what ran; `stance reproduce` compares it with the original's.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# The instruction sets that choose kernels in onnxruntime and OpenBLAS.
KERNEL_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
)
CPUINFO = Path("/proc/cpuinfo")
# One set of kernels on every x86-64 CPU with AVX2 and FMA: OpenBLAS's Haswell kernels and numpy's
# X86_V3 loops, whatever wider ones the CPU also has. Left to choose, OpenBLAS took SkylakeX and
# numpy its AVX-512 loops on this project's machines, and `fnc1.toml` trained to another test
# accuracy and calibration than with the AVX2 choices (benchmarks/RESULTS.md, the same numbers on
# every CPU). A variable the user sets is kept: both set empty (`OPENBLAS_CORETYPE=
# NPY_DISABLE_CPU_FEATURES= stance ...`) give each library its own choice back.
PINNED_KERNELS = {
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
# x86-64-v3, what numpy's X86_V3 loops need (a CPU or VM that hides one gets numpy's baseline
# loops) and more than OpenBLAS's Haswell kernels need (AVX2 and FMA).
PINNED_NEEDS = {"avx2", "fma", "bmi1", "bmi2", "abm", "movbe", "f16c"}


def pin_kernels(environ: dict | None = None) -> bool:
    """Set :data:`PINNED_KERNELS` in ``environ`` (the process's) where the CPU has AVX2 and FMA
    and numpy is not loaded yet: both libraries read them once, when they load. True if set."""
    environ = os.environ if environ is None else environ
    if "numpy" in sys.modules or not PINNED_NEEDS <= _cpu_flags():
        return False
    for name, value in PINNED_KERNELS.items():
        environ.setdefault(name, value)
    return True


def _cpu_flags() -> set[str]:
    """The CPU's flags, from /proc/cpuinfo (none known off Linux)."""
    return _cpu_info()[1]


def _cpu_info() -> tuple[str | None, set[str]]:
    """The CPU's model name and flags as /proc/cpuinfo gives them; ``(None, set())`` off Linux."""
    model, flags = None, set()
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    except OSError:  # not Linux
        pass
    return model, flags


def machine() -> dict[str, str]:
    """``cpu`` (its model), ``cpu_flags`` (the kernel-choosing instruction sets it has),
    ``blas`` (each BLAS library loaded, with the core type it chose) and ``numpy_simd`` (the
    instruction-set levels of the numpy loops that run here)."""
    # Here, not above: `stance` imports this module to pin the kernels before numpy loads.
    from threadpoolctl import threadpool_info

    model, flags = _cpu_info()
    # platform.processor() runs `uname -p`: only here, not on every command's way to the pin.
    model = model or platform.processor() or platform.machine()
    try:
        from numpy.lib.introspect import opt_func_info  # numpy 2.1 and later
    except ImportError:
        chosen = set()
    else:
        chosen = {
            choice["current"]
            for signatures in opt_func_info().values()
            for choice in signatures.values()
        }
    blas = sorted(
        f"{entry.get('internal_api', '?')} {entry.get('version') or ''} "
        f"{entry.get('architecture') or ''}".strip()
        for entry in threadpool_info()
        if entry.get("user_api") == "blas"
    )
    return {
        "cpu": model,
        "cpu_flags": " ".join(flag for flag in KERNEL_FLAGS if flag in flags) or "unknown",
        "blas": "; ".join(blas) or "none loaded",
        "numpy_simd": " ".join(sorted(chosen)) or "unknown",
    }


def differences(then: dict[str, str], now: dict[str, str]) -> list[str]:
    """What differs between two machines' records, in words; empty when nothing that chooses
    kernels does (a record without these keys, from an older run, differs in nothing known)."""
    found = []
    known = {None, "", "unknown"}
    # Both runs on the pinned BLAS and numpy kernels: other instruction sets then choose only
    # onnxruntime's int8 products, which are exact on all of them, so they move no number.
    same_kernels = (
        then.get("numpy_simd") not in known
        and then.get("numpy_simd") == now.get("numpy_simd")
        and blas_parts(then.get("blas") or "", 2) == blas_parts(now.get("blas") or "", 2)
    )
    if (
        then.get("cpu_flags") not in known
        and now.get("cpu_flags") not in known
        and (then["cpu_flags"] != now["cpu_flags"])
        and not same_kernels
    ):
        had, has = set(then["cpu_flags"].split()), set(now.get("cpu_flags", "").split())
        gone, added = sorted(had - has), sorted(has - had)
        found.append(
            "instruction sets: "
            + ", ".join([*(f"{f} only then" for f in gone), *(f"{f} only here" for f in added)])
        )
    if then.get("blas") and blas_parts(then["blas"], 2) != blas_parts(now.get("blas") or "", 2):
        found.append(f"BLAS kernels: {then['blas']} then, {now.get('blas')} here")
    if then.get("numpy_simd") not in known and then["numpy_simd"] != now.get("numpy_simd"):
        found.append(f"numpy loops: {then['numpy_simd']} then, {now.get('numpy_simd')} here")
    return found


def blas_parts(record: str, part: int) -> set[tuple[str, str]]:
    """Each BLAS library of a ``blas`` record with its version (``part`` 1, a library's own
    version: code, not hardware) or the core type it chose (``part`` 2: the hardware's doing)."""
    found = set()
    for entry in record.split("; "):
        words = entry.split(" ", 2)
        if len(words) > part:
            found.add((words[0], words[part]))
    return found
