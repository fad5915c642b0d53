"""The one pool of worker processes: forked, sharing what the parent loaded, one BLAS thread each,
ending with their parent. (A model with the sentence encoder predicts in one process on
``--jobs`` threads instead: train/predict.py.)

``stance predict --jobs`` and ``stance cv --jobs`` (and ``search --cv --jobs``) run their
work in :func:`pool`. The workers are forked, so they inherit what the parent holds
(:func:`shared`: a loaded model, or a config with its data and folds) without
pickling it once per task; where fork is unavailable the shared object is pickled
once per worker instead, when it can be. A worker
that outlives its parent (the parent killed with SIGKILL, or stopped by SIGTERM
before it could shut its pool down) would otherwise sit on its memory, about
235 MB per worker with a sentence encoder loaded, until the pool's queue times out.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

# prctl(2) option: the signal the kernel sends this process when its parent thread exits.
_PR_SET_PDEATHSIG = 1
# How often the fallback watcher (platforms without prctl) looks for its parent.
PARENT_CHECK_S = 1.0


_SHARED = None  # what the parent set before forking; see shared()


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


@contextmanager
def sharing(value):
    """Make ``value`` what :func:`shared` returns, here and in workers forked meanwhile."""
    global _SHARED
    before, _SHARED = _SHARED, value
    try:
        yield
    finally:
        _SHARED = before


def shared():
    """What the process that started this work shares with it (see :func:`pool`)."""
    return _SHARED


@contextmanager
def pool(jobs: int, value):
    """A ``ProcessPoolExecutor`` of ``jobs`` workers that share ``value`` (read it with
    :func:`shared`).

    Forked where the platform can (Linux), so the workers inherit ``value`` as it is in
    memory; elsewhere it is pickled once per worker. Task functions must live in an
    importable module, which pickling the tasks requires.
    """
    with sharing(value):
        if can_fork():
            executor = ProcessPoolExecutor(
                jobs, mp_context=multiprocessing.get_context("fork"), initializer=start_worker
            )
        else:  # pragma: no cover - Windows and macOS defaults
            executor = ProcessPoolExecutor(
                jobs, initializer=_start_spawned_worker, initargs=(value,)
            )
        with executor:
            yield executor


# mallopt(3) parameters of glibc's allocator.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc's allocator keep what a batch frees for the next batch, up to 1 GiB.

    Batch prediction allocates and frees arrays of tens of megabytes per chunk. By default glibc
    serves each from a fresh mmap and gives it back on free, so the next chunk's arrays fault in
    their pages again: a fifth of a fast model's time went to the kernel (2-core machine,
    SemEval fast model, 200,000 tweets: 4.7 s of 24 s in the kernel, 1.0 s of 20 s with this).
    Peak memory is unchanged; memory between chunks stays with the process. Called before the
    workers fork, which inherit it. Does nothing where the allocator is not glibc's, or where
    the user has set MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ themselves.
    """
    if not sys.platform.startswith("linux") or any(
        name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # absent from musl and other C libraries
    except (AttributeError, OSError):
        return False
    # Both: the mmap threshold puts large arrays on the heap, the trim threshold stops free()
    # from handing the heap's top back to the kernel at once.
    return bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES)) and bool(
        mallopt(_M_MMAP_THRESHOLD, _KEEP_FREED_BYTES)
    )


# Container allocations between young-generation collections while a batch job runs (Python's
# default is 700).
_BATCH_GC_THRESHOLD = 50_000


@contextmanager
def fewer_collections():
    """Spare a batch job most of Python's cyclic garbage collection, for its duration.

    Tokenizing allocates a list per text and a string per token, and with the default
    thresholds the collector ran every 700 of them and, as chunks survived, went through the
    whole heap again and again: a tenth of a word model's prediction time (1M rows, `--jobs 2`).
    What is alive on entry (the loaded model, imported modules) is frozen out of collection;
    young collections run every 50,000 allocations; cycles are still collected. Both settings
    are restored on exit. Enter it before forking, and the workers inherit it.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(_BATCH_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _start_spawned_worker(value) -> None:  # pragma: no cover - platforms without fork
    global _SHARED
    _SHARED = value
    start_worker()


def start_worker() -> None:
    """What every worker sets up first."""
    # Workers that each ran a multi-threaded BLAS (the embeddings step is matrix
    # products) would oversubscribe the cores. Holds for the worker's life.
    threadpool_limits(limits=1)
    exit_with_parent()


def exit_with_parent() -> None:
    """End this process when the process that started it ends, however that ends."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            # The parent may have died between fork and prctl: then no signal would come.
            if os.getppid() != parent:
                os._exit(1)
            return
    threading.Thread(
        target=_watch_parent, args=(parent,), daemon=True, name="exit-with-parent"
    ).start()


def _watch_parent(parent: int) -> None:  # pragma: no cover - the Linux path uses prctl
    event = threading.Event()
    while not event.wait(PARENT_CHECK_S):
        if os.getppid() != parent:
            os._exit(1)
