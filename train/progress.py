"""Progress on stderr for work that takes more than a moment: a bar with a total, a rate and an
ETA when stderr is a terminal (or when asked), nothing when it is piped or when asked not to.

tqdm draws it: it is already installed (NLTK and Optuna need it) and redraws in place at a
bounded rate, so a bar costs nothing measurable per row.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class Quiet:
    """A bar that shows nothing, for piped output and ``--no-progress``; its lines go to
    ``log``."""

    n = 0
    total = None

    def __init__(self, log=None):
        self._log = log

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_description_str(self, text: str, refresh: bool = True) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)
        else:
            print(message, file=sys.stderr)


def shown(asked: bool | None) -> bool:
    """Whether to show progress: as asked, else when stderr is a terminal."""
    return sys.stderr.isatty() if asked is None else asked


def bar(asked: bool | None, total: int | None, unit: str, description: str = "", log=None):
    """A bar counting ``unit`` up to ``total`` (None: a count without an ETA). ``unit`` "bytes"
    counts in KiB, MiB, GiB; any other unit in whole numbers. Its ``log(message)`` writes a line
    above the bar, or through ``log`` when no bar is shown."""
    if not shown(asked):
        return Quiet(log)

    class Bar(tqdm):
        def log(self, message: str) -> None:
            """A line above the bar, which stays drawn below it."""
            self.write(message, file=sys.stderr)

    common = {"total": total, "desc": description, "file": sys.stderr, "smoothing": 0.1}
    if unit == "bytes":
        return Bar(unit="B", unit_scale=True, unit_divisor=1024, **common)
    return Bar(unit=f" {unit}", **common)
