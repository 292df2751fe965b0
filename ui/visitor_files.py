"""Which visitor each file in Gradio's cache belongs to, and which queue events each visitor has open.

Gradio keeps uploads and results in one cache folder and accepts any path inside it as a handler input, from
anyone. ``ui.deploy`` therefore records, per visitor (the ``ps_visitor`` cookie):

- the files of their uploads (from the upload route's answer) and of their results (from the paths in the
  event streams they read);
- the queue events they joined, to count their running and waiting model jobs.

A cache path in a request body, or a recorded file on the file route, is then accepted only from a visitor it
was recorded for. The record lives in memory: after a restart earlier cache paths are refused (upload again).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

# "path": "..." in a JSON event stream (the value is a JSON string, escapes included).
PATH_IN_JSON = re.compile(rb'"path":\s*"((?:[^"\\]|\\.)*)"')


def json_paths(value: Any) -> Iterator[str]:
    """Every ``path`` string of every FileData-like dict inside a decoded JSON body."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "path" and isinstance(item, str):
                yield item
            else:
                yield from json_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_paths(item)


def stream_paths(chunk: bytes) -> list[str]:
    found = []
    for match in PATH_IN_JSON.finditer(chunk):
        try:
            found.append(json.loads(b'"' + match.group(1) + b'"'))
        except ValueError:
            continue
    return found


class VisitorFiles:
    """Thread-safe record of cache files and queue events per visitor; entries expire after ``max_age``."""

    def __init__(self, cache_dir: str, max_age_seconds: float) -> None:
        self.cache_dir = os.path.realpath(cache_dir)
        self.max_age = max_age_seconds
        self._owners: dict[str, dict[str, float]] = {}  # real path -> {visitor: when}
        self._sizes: dict[str, int] = {}  # uploads only: real path -> bytes
        self._events: dict[str, set[str]] = {}  # visitor -> event ids
        self._lock = threading.Lock()

    def in_cache(self, path: str) -> str | None:
        """The real path when ``path`` lies inside Gradio's cache, else None."""
        try:
            real = os.path.realpath(path)
        except (ValueError, OSError):
            return None
        return real if real.startswith(self.cache_dir + os.sep) else None

    def record(self, visitor: str, paths: list[str], upload: bool = False) -> None:
        now = time.time()
        with self._lock:
            for path in paths:
                real = self.in_cache(path)
                if real is None:
                    continue
                self._owners.setdefault(real, {})[visitor] = now
                if upload:
                    try:
                        self._sizes[real] = os.path.getsize(real)
                    except OSError:
                        self._sizes[real] = 0

    def forget(self, paths: list[str]) -> None:
        with self._lock:
            for path in paths:
                real = os.path.realpath(path)
                self._owners.pop(real, None)
                self._sizes.pop(real, None)

    def owners(self, path: str) -> set[str] | None:
        """Visitors a cache file was recorded for; None when it was never recorded (or is not in the cache)."""
        real = self.in_cache(path)
        if real is None:
            return None
        with self._lock:
            entry = self._owners.get(real)
            if entry is None:
                return None
            fresh = {v for v, when in entry.items() if time.time() - when < self.max_age}
            return fresh

    def allowed(self, visitor: str | None, path: str) -> bool:
        """May ``visitor`` hand ``path`` to a handler? Paths outside the cache are Gradio's to refuse."""
        real = self.in_cache(path)
        if real is None:
            return True
        owners = self.owners(path)
        return visitor is not None and owners is not None and visitor in owners

    def upload_bytes(self, visitor: str) -> int:
        with self._lock:
            return sum(size for real, size in self._sizes.items()
                       if visitor in self._owners.get(real, {}) and os.path.exists(real))

    def prune(self) -> None:
        cutoff = time.time() - self.max_age
        with self._lock:
            for real in list(self._owners):
                entry = {v: when for v, when in self._owners[real].items() if when >= cutoff}
                if entry and os.path.exists(real):
                    self._owners[real] = entry
                else:
                    self._owners.pop(real, None)
                    self._sizes.pop(real, None)

    # Queue events ------------------------------------------------------------------------------------------
    def add_event(self, visitor: str, event_id: str) -> None:
        with self._lock:
            self._events.setdefault(visitor, set()).add(event_id)

    def open_events(self, visitor: str, still_open: Any) -> list[str]:
        """The visitor's events for which ``still_open(event_id)`` holds (finished ones are dropped)."""
        with self._lock:
            mine = self._events.get(visitor, set())
            alive = {e for e in mine if still_open(e)}
            if alive:
                self._events[visitor] = alive
            else:
                self._events.pop(visitor, None)
            return sorted(alive)
