"""The machine a run ran on, as far as it moves the numbers. The CPU's instruction sets decide
which kernels run: onnxruntime's int8 matrix products (AVX2, AVX-512, VNNI paths) and the BLAS
of numpy and scikit-learn (OpenBLAS picks a core type by them). Kernels of different sets round
differently in the last bits, and a solver or a threshold can turn that into a changed metric.
Every run records what is here; `stance reproduce` compares it with the original's.
"""

from __future__ import annotations

import platform
from pathlib import Path

from threadpoolctl import threadpool_info

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


def machine() -> dict[str, str]:
    """``cpu`` (its model), ``cpu_flags`` (the kernel-choosing instruction sets it has) and
    ``blas`` (each BLAS library loaded, with the core type it chose)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
                break
    except OSError:  # not Linux: the model alone
        pass
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
    }


def differences(then: dict[str, str], now: dict[str, str]) -> list[str]:
    """What differs between two machines' records, in words; empty when nothing that chooses
    kernels does (a record without these keys, from an older run, differs in nothing known)."""
    found = []
    known = {None, "", "unknown"}
    if (
        then.get("cpu_flags") not in known
        and now.get("cpu_flags") not in known
        and (then["cpu_flags"] != now["cpu_flags"])
    ):
        had, has = set(then["cpu_flags"].split()), set(now.get("cpu_flags", "").split())
        gone, added = sorted(had - has), sorted(has - had)
        found.append(
            "instruction sets: "
            + ", ".join([*(f"{f} only then" for f in gone), *(f"{f} only here" for f in added)])
        )
    if then.get("blas") and blas_parts(then["blas"], 2) != blas_parts(now.get("blas") or "", 2):
        found.append(f"BLAS kernels: {then['blas']} then, {now.get('blas')} here")
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
