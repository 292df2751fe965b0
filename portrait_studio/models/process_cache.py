"""The process's one model cache, for code that is not handed a ``ModelManager``.

Face models (RetinaFace, ArcFace, hyperIQA, ParseNet, facexlib's restore helper), GFPGAN and AnimeGAN
were cached in module-level dicts, outside the ``ModelCache``: an ``unload_all`` before training never
freed them. They are now entries of this cache, keyed by role, weights file and device, and the app,
the training worker and the CLI build their ``ModelManager`` over the same cache
(:func:`process_manager`), so one ``unload_all`` frees everything the process put on the device.

Users of these entries lock them with ``cache.use(key, loaders={key: loader})`` for each inference, so
an eviction can never move a model off the device while it runs.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from portrait_studio.config import Settings

if TYPE_CHECKING:
    from portrait_studio.models.cache import ModelCache
    from portrait_studio.models.manager import ModelManager

_lock = threading.Lock()
_caches: dict[tuple[str, str], ModelCache] = {}


def process_cache(settings: Settings) -> ModelCache:
    """The cache of this process for the settings' device and home folder (created on first use, then
    shared). A process serves one home; tests that run several homes in one process get one cache each,
    so a ``base:unet`` of one home is never served to another."""
    from portrait_studio.models.cache import ModelCache  # torch: imported by the first job, not at start-up
    from portrait_studio.models.devices import GIB, device_budget_for, pick_device

    device = pick_device(settings.device)
    key = (str(device), str(Path(settings.home).resolve()))
    with _lock:
        cache = _caches.get(key)
        if cache is None:
            cache = ModelCache(device, device_budget_for(settings, device), ram_budget=int(settings.cache_gb * GIB))
            _caches[key] = cache
        return cache


def process_manager(settings: Settings) -> ModelManager:
    """A ``ModelManager`` over :func:`process_cache` (the app's, the worker's and the CLI's), which it
    makes on first use: creating the manager imports no torch."""
    from portrait_studio.models.manager import ModelManager

    return ModelManager(settings, cache_factory=lambda: process_cache(settings))


def file_key(role: str, path: object, device: object, part: str = "model") -> str:
    """A cache key naming the role, the weights file and the device (several homes may share a process)."""
    return f"{role}:{part}@{path}#{device}"
