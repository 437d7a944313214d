"""In-process memos of deterministic classifier training: keys from the inputs' bytes, and a
small first-in, first-out store (gap/classifier.py's domain scores, gap/retention.py's fold
models)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def digest(*arrays: np.ndarray, salt: object = ()) -> str:
    """SHA-256 of the arrays' shapes, dtypes and bytes (read in place, not copied) and `salt`."""
    hashed = hashlib.sha256(repr(salt).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        hashed.update(repr((array.shape, str(array.dtype))).encode())
        hashed.update(array.data)
    return hashed.hexdigest()


def remember(cache: dict[str, Any], key: str, value: Any, size: int) -> None:
    """Store `value`, dropping the oldest entries beyond `size`."""
    while len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value
