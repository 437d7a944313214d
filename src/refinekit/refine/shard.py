"""Shards: `--shard K/N` splits a folder's files over N machines by a stable hash of each path."""

from __future__ import annotations

import hashlib

from ..errors import UsageError


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), with 1 <= K <= N."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UsageError(
            f"--shard {text!r}: expected K/N, e.g. 1/4 for the first of 4 shards"
        ) from None
    if n < 1 or not 1 <= k <= n:
        raise UsageError(
            f"--shard {text!r}: need 1 <= K <= N (shards are numbered from 1; "
            "for a 0-based array index I use $((I+1))/N)"
        )
    return k, n


def shard_of(relative: str, n: int) -> int:
    """The shard (1..n) a file belongs to: a stable hash of its relative path.

    A hash, not a position in the listing, so adding or removing files never moves another file
    to a different shard, and every machine agrees without coordination.
    """
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % n
