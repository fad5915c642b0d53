"""The worker pool's process settings."""

from __future__ import annotations

import ctypes
import sys

import pytest

from train import workers


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018 - present in glibc alone
    except (AttributeError, OSError):
        return False
    return sys.platform.startswith("linux")


@pytest.mark.skipif(not _glibc(), reason="the allocator setting is glibc's")
def test_glibc_keeps_freed_memory_for_the_next_batch(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert workers.keep_freed_memory() is True


@pytest.mark.parametrize("variable", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_a_users_own_allocator_setting_is_left_alone(monkeypatch, variable):
    monkeypatch.setenv(variable, "131072")
    assert workers.keep_freed_memory() is False
