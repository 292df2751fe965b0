"""A model cache of components, with lock counts, a byte budget and LRU eviction.

Anchors: InvokeAI's ``ModelCache`` (a record per component, locks, a budget derived from free VRAM)
and ComfyUI's "unload everything before heavy work". Entries are components (``base:unet``,
``base:vae``, ...), not pipelines, so several pipelines can share them.

Two tiers: the *execution device* (``cuda``/``mps``/``cpu``) and, when that is an accelerator, CPU
RAM as a second tier. ``use()`` locks entries and moves them onto the execution device; when the
device budget is exceeded, the least recently used unlocked entries move to RAM, and when the RAM
budget is exceeded they are dropped. Locked entries are never moved or dropped. All sizes are plain
byte counts, so the policy is testable on a CPU with fake sizes.

An entry may *share* tensors with others (``get(key, loader, shares=("base:unet",))``: the motion UNet
holds the base UNet's spatial parameters, not a copy). Its size is then only the bytes it adds; using it
locks and places what it shares too; offloading it moves only its own tensors; and dropping a shared
entry drops the entries built on it (they would otherwise keep its tensors alive as a hidden copy).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from portrait_studio.models.memory import release_cached_blocks

log = logging.getLogger(__name__)

Loader = Callable[[], Any]


def module_bytes(obj: Any) -> int:
    """Bytes of parameters and buffers of a torch module; 0 for anything else (tokenizers, configs)."""
    if isinstance(obj, torch.nn.Module):
        tensors = list(obj.parameters()) + list(obj.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)
    return 0


def _tensor_ids(obj: Any) -> set[int]:
    if not isinstance(obj, torch.nn.Module):
        return set()
    return {id(t) for t in list(obj.parameters()) + list(obj.buffers())}


def own_bytes(obj: Any, shared: Any) -> int:
    """Bytes of ``obj``'s tensors that are not tensors of the modules in ``shared``."""
    if not isinstance(obj, torch.nn.Module):
        return 0
    exclude = set().union(*(_tensor_ids(other) for other in shared)) if shared else set()
    tensors = [t for t in list(obj.parameters()) + list(obj.buffers()) if id(t) not in exclude]
    return sum(t.numel() * t.element_size() for t in tensors)


def _move(obj: Any, device: torch.device, keep: set[int] | None = None) -> None:
    """Move a module's tensors to ``device`` in place; tensors whose id is in ``keep`` stay where they are.

    In place (``parameter.data = ...``, what ``Module.to`` does between CPU and CUDA) keeps every Parameter
    object, so entries sharing it keep sharing it wherever it lives.
    """
    if not isinstance(obj, torch.nn.Module):
        return
    keep = keep or set()
    with torch.no_grad():
        for module in obj.modules():
            for parameter in module._parameters.values():
                if parameter is not None and id(parameter) not in keep and parameter.device != device:
                    parameter.data = parameter.data.to(device)
            for name, buffer in module._buffers.items():
                if buffer is not None and id(buffer) not in keep and buffer.device != device:
                    module._buffers[name] = buffer.to(device)


@dataclass
class CacheEntry:
    key: str
    value: Any
    size: int
    on_device: bool
    locks: int = 0
    last_used: float = field(default_factory=time.monotonic)
    shares: tuple[str, ...] = ()


@dataclass
class CacheStats:
    loads: int = 0
    hits: int = 0
    offloads: int = 0
    drops: int = 0


class ModelCache:
    """Thread-safe component cache. ``get`` loads once; ``use`` locks and places on the device."""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        device_budget: int | Callable[[int], int] = 8 << 30,
        ram_budget: int = 16 << 30,
        sizer: Callable[[Any], int] = module_bytes,
        release_memory: Callable[[], None] | None = None,
    ) -> None:
        """``device_budget`` is bytes, or a function of the bytes the cache holds on the device now (CUDA:
        :func:`portrait_studio.models.memory.cache_device_budget` over live figures). ``release_memory``
        runs after every eviction (default: ``torch.cuda.empty_cache()`` on CUDA)."""
        self.device = torch.device(device)
        self._device_budget = device_budget
        self._release_memory = release_memory or (lambda: release_cached_blocks(self.device))
        self.ram_budget = ram_budget
        self._sizer = sizer
        self._entries: dict[str, CacheEntry] = {}
        self._lock = threading.RLock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.stats = CacheStats()

    # ---- budget -------------------------------------------------------------------------------
    @property
    def two_tier(self) -> bool:
        return self.device.type != "cpu"

    @property
    def device_budget(self) -> int:
        budget = self._device_budget
        return budget(self.device_bytes()) if callable(budget) else budget

    def device_bytes(self) -> int:
        with self._lock:
            return sum(e.size for e in self._entries.values() if e.on_device)

    def ram_bytes(self) -> int:
        with self._lock:
            if not self.two_tier:
                return self.device_bytes()
            return sum(e.size for e in self._entries.values() if not e.on_device)

    # ---- loading --------------------------------------------------------------------------------
    def get(self, key: str, loader: Loader, *, shares: tuple[str, ...] = ()) -> Any:
        """Return the cached value for ``key``, loading it with ``loader`` once if absent.

        Concurrent callers for one key wait for the single load; different keys load in parallel.
        Loaded values stay in RAM (storage tier) until ``use`` places them. ``shares`` names cached
        entries whose tensors the value holds (they must be cached already).
        """
        return self._obtain(key, loader, lock=False, shares=shares)[0].value

    def _obtain(
        self, key: str, loader: Loader | None, *, lock: bool, shares: tuple[str, ...] = ()
    ) -> list[CacheEntry]:
        """The entry for ``key`` (first), loaded if absent. With ``lock`` its lock count, and that of every
        entry it shares tensors with, is raised in the same critical section that finds or inserts it, so no
        ``unload_all`` can drop it in between; the list then holds every entry locked."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.stats.hits += 1
                entry.last_used = time.monotonic()
                return self._locked(entry) if lock else [entry]
            if loader is None:
                raise KeyError(f"not cached (call get first): {key}")
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self.stats.hits += 1
                    return self._locked(entry) if lock else [entry]
            value = loader()
            size = self._sizer(value)
            with self._lock:
                missing = [k for k in shares if k not in self._entries]
                if missing:
                    raise KeyError(f"{key} shares tensors with entries that are not cached: {', '.join(missing)}")
                if shares:  # count only what this entry adds
                    shared = [self._entries[k].value for k in shares]
                    size -= module_bytes(value) - own_bytes(value, shared)
                # On a CPU-only cache the value is already "on the device".
                entry = CacheEntry(key, value, size, on_device=not self.two_tier, shares=tuple(shares))
                self._entries[key] = entry
                self.stats.loads += 1
                locked = self._locked(entry) if lock else [entry]
                self._make_room_in_ram(0)
                if not self.two_tier:
                    self._make_room_on_device(0)
            return locked

    def _locked(self, entry: CacheEntry) -> list[CacheEntry]:
        """Raise the lock count of ``entry`` and of every entry it shares tensors with (caller holds the lock)."""
        keys = self._with_shared((entry.key,))
        missing = [k for k in keys if k not in self._entries]
        if missing:
            raise KeyError(f"not cached (call get first): {', '.join(missing)}")
        entries = [self._entries[k] for k in keys]
        for locked in entries:
            locked.locks += 1
        return entries

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def is_locked(self, key: str) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            return bool(entry and entry.locks)

    # ---- use ------------------------------------------------------------------------------------
    @contextmanager
    def use(
        self,
        *keys: str,
        loaders: Mapping[str, Loader] | None = None,
        shares: Mapping[str, tuple[str, ...]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Lock ``keys`` (and what they share) on the execution device for the ``with`` block; unlock even on
        error.

        With ``loaders`` (key -> loader), absent keys are loaded here (``shares``: key -> the entries its value
        shares tensors with), and every entry is locked in the same critical section that finds or inserts
        it: an ``unload_all`` in another thread cannot drop a component between its loading and its locking
        (load-and-lock is one step).
        """
        entries = self._lock_entries(keys, loaders or {}, shares or {})
        try:
            yield {e.key: e.value for e in entries}
        finally:
            with self._lock:
                now = time.monotonic()
                for entry in entries:
                    entry.locks -= 1
                    entry.last_used = now

    def _lock_entries(
        self, keys: tuple[str, ...], loaders: Mapping[str, Loader], shares: Mapping[str, tuple[str, ...]]
    ) -> list[CacheEntry]:
        entries: list[CacheEntry] = []
        try:
            for key in keys:
                entries.extend(self._obtain(key, loaders.get(key), lock=True, shares=shares.get(key, ())))
            with self._lock:
                distinct = list({id(e): e for e in entries}.values())
                needed = sum(e.size for e in distinct if not e.on_device)
                self._make_room_on_device(needed)
                for entry in distinct:
                    if not entry.on_device:
                        _move(entry.value, self.device)
                        entry.on_device = True
                    entry.last_used = time.monotonic()
                # Entries pushed off the device may now overflow RAM.
                self._make_room_in_ram(0)
        except BaseException:
            with self._lock:
                for entry in entries:
                    entry.locks -= 1
            raise
        return entries

    def _with_shared(self, keys: tuple[str, ...]) -> tuple[str, ...]:
        """``keys`` followed by every entry they share tensors with (transitively), each once."""
        ordered: list[str] = []
        pending = list(keys)
        while pending:
            key = pending.pop(0)
            if key in ordered:
                continue
            ordered.append(key)
            entry = self._entries.get(key)
            if entry is not None:
                pending.extend(entry.shares)
        return tuple(ordered)

    def _dependents(self, key: str) -> list[CacheEntry]:
        return [e for e in self._entries.values() if key in e.shares]

    # ---- eviction -------------------------------------------------------------------------------
    def _lru_unlocked(self, on_device: bool) -> list[CacheEntry]:
        candidates = [e for e in self._entries.values() if e.on_device == on_device and e.locks == 0]
        return sorted(candidates, key=lambda e: e.last_used)

    def _make_room_on_device(self, needed: int) -> None:
        budget = self.device_budget
        evicted = False
        for victim in self._lru_unlocked(on_device=True):
            if self.device_bytes() + needed <= budget:
                break
            evicted = True
            if self.two_tier:
                # Tensors shared with another entry stay: that entry decides where they live.
                keep = set().union(*(_tensor_ids(self._entries[k].value) for k in victim.shares if k in self._entries))
                _move(victim.value, torch.device("cpu"), keep)
                victim.on_device = False
                self.stats.offloads += 1
                log.info("cache: offloaded %s to RAM", victim.key)
            else:
                self._drop(victim)
        if evicted:
            # The allocator keeps freed blocks reserved; hand them back so the next reading (and any other
            # process on the card) sees them free.
            self._release_memory()
        if self.device_bytes() + needed > budget:
            log.warning(
                "cache: %d bytes locked on %s exceed the budget of %d bytes", self.device_bytes() + needed,
                self.device, budget,
            )

    def _make_room_in_ram(self, needed: int) -> None:
        if not self.two_tier:
            return
        for victim in self._lru_unlocked(on_device=False):
            if self.ram_bytes() + needed <= self.ram_budget:
                return
            self._drop(victim)

    def _drop(self, entry: CacheEntry) -> None:
        if entry.key not in self._entries:
            return
        del self._entries[entry.key]
        self.stats.drops += 1
        log.info("cache: dropped %s", entry.key)
        # An entry holding this one's tensors would keep them alive: a reload would then be a second copy.
        # (Dependents are never locked while this one is unlocked: using a dependent locks what it shares.)
        for dependent in self._dependents(entry.key):
            self._drop(dependent)

    def unload_all(self) -> list[str]:
        """Drop every unlocked entry (before training, which needs the whole device)."""
        with self._lock:
            victims = [e for e in self._entries.values() if e.locks == 0]
            for entry in victims:
                self._drop(entry)
        gc.collect()  # cycles inside diffusers/transformers modules keep their tensors alive otherwise
        self._release_memory()
        return [e.key for e in victims]

    def remove(self, prefix: str) -> None:
        """Drop unlocked entries whose key starts with ``prefix`` (a model replaced on disk)."""
        with self._lock:
            for entry in [e for e in self._entries.values() if e.key.startswith(prefix) and e.locks == 0]:
                self._drop(entry)
