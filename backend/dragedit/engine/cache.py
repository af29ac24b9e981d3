"""Bounded caches: an in-memory LRU and a crash-safe folder of files (write, then rename)."""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable


def content_key(*parts: Any) -> str:
    """A stable hex digest of bytes/strings/numbers (e.g. image bytes + model + settings)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, (bytes, bytearray, memoryview)) else repr(part).encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:32]


class MemoryCache:
    """Least-recently-used map with a bound on the number of items."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: str, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class DiskCache:
    """Files named by key in one folder, bounded in total bytes (oldest used go first).

    A file appears only complete: it is written under a temporary name and renamed into place, so
    a crash mid-write leaves no half file under a real key.
    """

    def __init__(self, folder: Path, max_bytes: int, suffix: str):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.suffix = suffix

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{self.suffix}"

    def get(self, key: str) -> Path | None:
        path = self.path(key)
        if path.is_file():
            os.utime(path)
            return path
        return None

    def put(self, key: str, write: Callable[[Path], None]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=self.suffix)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._prune()
        return self.path(key)

    def _prune(self) -> None:
        files = sorted((p for p in self.folder.glob(f"*{self.suffix}") if not p.name.startswith(".tmp-")),
                       key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        while files and total > self.max_bytes:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob(f"*{self.suffix}")) if self.folder.is_dir() else 0
