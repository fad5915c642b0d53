"""The worker pool's process settings."""

from __future__ import annotations

import ctypes
import gc
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


def test_a_batch_job_collects_less_and_leaves_the_collector_as_it_found_it():
    before = gc.get_threshold()
    alive = [object()]  # alive on entry: frozen out of collection for the job's length
    with workers.fewer_collections():
        assert gc.get_threshold()[0] == workers._BATCH_GC_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
        cycle = []
        cycle.append(cycle)  # cycles made meanwhile are still collectable
        del cycle
        assert gc.collect() >= 1
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert alive


def test_a_failing_batch_job_still_restores_the_collector():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), workers.fewer_collections():
        raise RuntimeError("chunk failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
