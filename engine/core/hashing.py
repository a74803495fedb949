"""File hashes for cache keys and integrity checks.

A module of its own at the bottom of the import graph, so that models, export,
quantisation and TensorRT can all hash files without importing one another.
"""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
