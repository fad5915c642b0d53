"""Temporary folders that a killed process does not leave behind for good.

A folder made with :func:`scratch_folder` is removed when its ``with`` block ends, as a
``tempfile.TemporaryDirectory`` is. A process killed with SIGKILL cannot remove it, so the
folder holds an ``.owner`` file naming its process (host, PID namespace, pid and start time),
and the next process to make a folder of the same kind removes those whose process has
certainly ended. A folder without that file, of another user, of another host or of another
PID namespace (a container sharing /tmp) is never touched: its process cannot be checked.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

OWNER = ".owner"


def pid_namespace() -> int | None:
    """This process's PID namespace (Linux), whose pids are the ones it can see."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux
        return None


def _this_process() -> dict:
    me = psutil.Process()
    return {
        "host": socket.gethostname(),
        "pid_namespace": pid_namespace(),
        "pid": me.pid,
        "started": me.create_time(),
    }


def _ended(owner: dict) -> bool:
    """Whether the process ``owner`` names has certainly ended; False wherever that cannot be
    told from here."""
    if owner.get("host") != socket.gethostname() or owner.get("pid_namespace") != pid_namespace():
        return False
    try:
        return psutil.Process(int(owner["pid"])).create_time() != owner["started"]
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, KeyError, TypeError, ValueError):  # not ours to inspect, or malformed
        return False


def remove_leftovers(kind: str, root: Path | None = None) -> list[Path]:
    """Remove this user's ``stance-KIND-*`` folders whose process has ended; returns them."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"stance-{kind}-*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            owner = json.loads((folder / OWNER).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # no owner file: not a folder this module made
            continue
        if isinstance(owner, dict) and _ended(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def scratch_folder(kind: str) -> Iterator[str]:
    """A new, empty temporary folder ``stance-KIND-XXXX`` (but for its owner file), removed on
    leaving."""
    remove_leftovers(kind)
    with tempfile.TemporaryDirectory(prefix=f"stance-{kind}-") as folder:
        (Path(folder) / OWNER).write_text(json.dumps(_this_process()), encoding="utf-8")
        yield folder
