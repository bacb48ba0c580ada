"""Where ETags and the answers they validate are kept for conditional requests (`If-None-Match`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CachedResponse:
    etag: str
    body: bytes


class EtagCache(Protocol):
    """Where ETags and the bodies they validate are kept, keyed by URL (memory now, a DB later)."""

    def get(self, url: str) -> CachedResponse | None: ...

    def put(self, url: str, response: CachedResponse) -> None: ...


class MemoryEtagCache:
    """A thread-safe LRU `EtagCache` bounded in entries and bytes."""

    def __init__(self, max_entries: int = 2048, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, CachedResponse] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, url: str) -> CachedResponse | None:
        with self._lock:
            found = self._items.get(url)
            if found is not None:
                self._items.move_to_end(url)
            return found

    def put(self, url: str, response: CachedResponse) -> None:
        if len(response.body) > self._max_bytes:
            return
        with self._lock:
            previous = self._items.pop(url, None)
            if previous is not None:
                self._bytes -= len(previous.body)
            self._items[url] = response
            self._bytes += len(response.body)
            while len(self._items) > self._max_entries or self._bytes > self._max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.body)
