"""Files built from installed weights on first use, kept under a content hash.

Distilled word-piece tables (:mod:`features.static`) and ONNX graphs of the encoder
(:mod:`features.onnx_encoder`) take seconds to build and never change for a given copy of the
weights, so they are built once per machine and named by the sha256 of what they came from.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_folder() -> Path:
    """``$STANCE_CACHE_DIR``, else ``$XDG_CACHE_HOME/stance``, else ``~/.cache/stance``."""
    if os.environ.get("STANCE_CACHE_DIR"):
        return Path(os.environ["STANCE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stance"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
