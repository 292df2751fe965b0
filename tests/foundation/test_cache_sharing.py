"""Cache entries that share tensors (the motion UNet holds the base UNet's spatial weights): size, lock, move, drop.

A ``meta`` execution device stands in for CUDA to make the cache two-tier; the moves themselves are
recorded instead of run (a CPU tensor cannot become a meta one in place, a CUDA one can).
"""

from __future__ import annotations

import torch

from portrait_studio.models import cache as cache_module
from portrait_studio.models.cache import ModelCache, module_bytes


def _pair() -> tuple[torch.nn.Linear, torch.nn.Linear]:
    base = torch.nn.Linear(8, 8)
    dependent = torch.nn.Linear(8, 8)
    dependent.weight = base.weight  # the same Parameter object, as in the motion UNet's spatial layers
    return base, dependent


def test_a_sharing_entry_counts_only_what_it_adds() -> None:
    cache = ModelCache("cpu", device_budget=1 << 20, ram_budget=1 << 20)
    base, dependent = _pair()
    cache.get("base:unet", lambda: base)
    cache.get("base+motion:unet_motion", lambda: dependent, shares=("base:unet",))
    assert cache._entries["base+motion:unet_motion"].size == dependent.bias.numel() * 4
    assert cache.device_bytes() == module_bytes(base) + dependent.bias.numel() * 4


def test_using_a_sharing_entry_locks_and_places_what_it_shares(monkeypatch) -> None:
    moves: list[tuple[object, object]] = []
    monkeypatch.setattr(cache_module, "_move", lambda value, device, keep=None: moves.append((value, device)))
    cache = ModelCache("meta", device_budget=1 << 20, ram_budget=1 << 20)
    base, dependent = _pair()
    cache.get("base:unet", lambda: base)
    cache.get("motion", lambda: dependent, shares=("base:unet",))
    with cache.use("motion") as parts:
        assert set(parts) == {"motion", "base:unet"}
        assert cache.is_locked("base:unet")
        assert {id(value) for value, device in moves if device == torch.device("meta")} == {id(base), id(dependent)}
    assert not cache.is_locked("base:unet")


def test_offloading_a_sharing_entry_leaves_the_shared_tensors_where_they_are(monkeypatch) -> None:
    moves: list[tuple[object, set[int] | None]] = []
    monkeypatch.setattr(cache_module, "_move", lambda value, device, keep=None: moves.append((value, keep)))
    cache = ModelCache("meta", device_budget=1 << 20, ram_budget=1 << 20)
    base, dependent = _pair()
    cache.get("base:unet", lambda: base)
    cache.get("motion", lambda: dependent, shares=("base:unet",))
    with cache.use("base:unet", "motion"):
        pass
    moves.clear()
    cache._device_budget = module_bytes(base)  # room for the base UNet only: the motion entry must go
    with cache.use("base:unet"):
        pass
    assert [value for value, _ in moves] == [dependent]
    assert moves[0][1] == {id(base.weight), id(base.bias)}
    # The selective move itself: own tensors move, kept ones stay; the Parameter objects are kept.
    monkeypatch.undo()
    shared, own = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    own.weight = shared.weight
    bias = own.bias
    cache_module._move(own, torch.device("cpu"), {id(shared.weight)})
    assert own.weight is shared.weight and own.bias is bias


def test_dropping_a_shared_entry_drops_what_was_built_on_it() -> None:
    cache = ModelCache("cpu", device_budget=1 << 20, ram_budget=1 << 20)
    base, dependent = _pair()
    cache.get("base:unet", lambda: base)
    cache.get("motion", lambda: dependent, shares=("base:unet",))
    cache.get("base:vae", lambda: torch.nn.Linear(2, 2))
    cache.remove("base:unet")
    assert cache.keys() == ["base:vae"], "a kept motion entry would hold a hidden second copy after a reload"
