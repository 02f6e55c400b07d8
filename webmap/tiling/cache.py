"""A thread-safe, bytes-bounded LRU cache of encoded tiles, and tile ETags."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

#: Bookkeeping bytes charged per entry on top of the payload (key, node, object headers).
ENTRY_OVERHEAD = 200


class TileCache:
    """Least-recently-used cache whose total payload size stays under ``max_bytes``.

    Parameters
    ----------
    max_bytes
        Upper bound of the summed sizes of cached values (plus a small per-entry overhead).
        ``0`` disables caching. A single value larger than the bound is not cached.

    Examples
    --------
    >>> cache = TileCache(1000)
    >>> cache.put(("png", "priority", 5, 1, 2), b"x" * 100)
    >>> cache.get(("png", "priority", 5, 1, 2)) == b"x" * 100
    True
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, bytes | None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @staticmethod
    def _size(value: bytes | None) -> int:
        return ENTRY_OVERHEAD + (len(value) if value is not None else 0)

    def get(self, key: Hashable, default: Any = KeyError) -> Any:
        """Return the cached value of ``key`` (and mark it recent), else ``default``.

        With the default ``default`` a miss raises ``KeyError``; values may be ``None``
        (an empty tile), so pass a sentinel to tell a miss from a cached empty tile.
        """
        with self._lock:
            try:
                value = self._data[key]
            except KeyError:
                self.misses += 1
                if default is KeyError:
                    raise
                return default
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: bytes | None) -> None:
        """Store ``value`` under ``key``, evicting least-recently-used entries to fit."""
        size = self._size(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._data:
                self._bytes -= self._size(self._data.pop(key))
            self._data[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= self._size(evicted)
                self.evictions += 1

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes currently charged (payloads plus per-entry overhead)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict[str, int]:
        """Return ``{entries, bytes, max_bytes, hits, misses, evictions}``."""
        with self._lock:
            return {"entries": len(self._data), "bytes": self._bytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions}


def etag_for(*parts: object) -> str:
    """Return a strong ETag value (without quotes) hashing ``parts``.

    Examples
    --------
    >>> etag_for("run-1", 10, "priority", 6, 51, 31) == etag_for("run-1", 10, "priority", 6, 51, 31)
    True
    """
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()
