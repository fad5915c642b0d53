"""Temporary folders that a killed process does not leave behind for good.

A folder made with :func:`scratch_folder` is removed when its ``with`` block ends, as a
``tempfile.TemporaryDirectory`` is. A process killed with SIGKILL cannot remove it, so its name
carries the process's id and start time, and the next process to make a folder of the same kind
removes those whose process has ended.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil


def _process_mark(pid: int) -> str:
    """The pid with the process's start time (in centiseconds), which tells a reused pid apart."""
    return f"{pid}.{int(psutil.Process(pid).create_time() * 100)}"


def _ended(mark: str) -> bool:
    pid, _, _ = mark.partition(".")
    try:
        return _process_mark(int(pid)) != mark
    except (psutil.NoSuchProcess, ValueError):
        return True
    except psutil.Error:  # a process we may not inspect: alive
        return False


def remove_leftovers(kind: str, root: Path | None = None) -> list[Path]:
    """Remove the ``stance-KIND-*`` folders of processes that have ended; returns them."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"stance-{kind}-*"):
        mark = folder.name.removeprefix(f"stance-{kind}-").split("-")[0]
        if folder.is_dir() and mark.count(".") == 1 and _ended(mark):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def scratch_folder(kind: str) -> Iterator[str]:
    """A new, empty temporary folder ``stance-KIND-PID.START-XXXX``, removed on leaving."""
    remove_leftovers(kind)
    prefix = f"stance-{kind}-{_process_mark(psutil.Process().pid)}-"
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield folder
