"""What every worker process of this project sets up first: one BLAS thread, and to end with its parent.

``stance predict --jobs`` and ``stance cv --jobs`` fork worker processes. A worker
that outlives its parent (the parent killed with SIGKILL, or stopped by SIGTERM
before it could shut its pool down) would otherwise sit on its memory, about
235 MB per worker with a sentence encoder loaded, until the pool's queue times out.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

# prctl(2) option: the signal the kernel sends this process when its parent thread exits.
_PR_SET_PDEATHSIG = 1
# How often the fallback watcher (platforms without prctl) looks for its parent.
PARENT_CHECK_S = 1.0


def start_worker() -> None:
    """The initializer of every worker pool: call first thing in the worker."""
    from threadpoolctl import threadpool_limits

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
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="exit-with-parent").start()


def _watch_parent(parent: int) -> None:  # pragma: no cover - the Linux path uses prctl
    event = threading.Event()
    while not event.wait(PARENT_CHECK_S):
        if os.getppid() != parent:
            os._exit(1)
