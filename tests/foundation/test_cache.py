"""The cache policy with fake sizes: budget, LRU eviction, locks, single loads under concurrency."""

import threading
import time

import pytest
import torch

from portrait_studio.models.cache import ModelCache, module_bytes
from portrait_studio.models.devices import cuda_budget, pick_dtype
from portrait_studio.models.memory import DeviceMemory


class Fake:
    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size


def cache_with(budget: int, device: str = "cpu", ram: int = 10_000) -> ModelCache:
    return ModelCache(device=device, device_budget=budget, ram_budget=ram, sizer=lambda obj: obj.size)


def test_get_loads_once_and_returns_the_same_object() -> None:
    cache = cache_with(1000)
    calls = []
    first = cache.get("m:unet", lambda: calls.append(1) or Fake("unet", 10))
    second = cache.get("m:unet", lambda: calls.append(1) or Fake("unet", 10))
    assert first is second
    assert calls == [1]
    assert cache.stats.loads == 1 and cache.stats.hits == 1


def test_concurrent_requests_load_a_model_once() -> None:
    cache = cache_with(1000)
    loads = []
    barrier = threading.Barrier(6)

    def slow_loader() -> Fake:
        loads.append(threading.get_ident())
        time.sleep(0.2)
        return Fake("unet", 10)

    results = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get("m:unet", slow_loader))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert all(r is results[0] for r in results)


def test_lru_unlocked_entries_are_dropped_to_fit_the_budget() -> None:
    cache = cache_with(100)
    cache.get("a", lambda: Fake("a", 40))
    cache.get("b", lambda: Fake("b", 40))
    with cache.use("a"):
        pass  # a is now more recently used than b
    cache.get("c", lambda: Fake("c", 40))
    assert "b" not in cache
    assert "a" in cache and "c" in cache
    assert cache.device_bytes() <= 100


def test_locked_entries_are_never_evicted() -> None:
    cache = cache_with(100)
    cache.get("a", lambda: Fake("a", 60))
    with cache.use("a"):
        cache.get("b", lambda: Fake("b", 60))  # over budget, but a is locked
        assert "a" in cache
        assert cache.is_locked("a")
    assert not cache.is_locked("a")


def test_lock_is_released_when_the_job_fails() -> None:
    cache = cache_with(100)
    cache.get("a", lambda: Fake("a", 10))
    with pytest.raises(RuntimeError):
        with cache.use("a"):
            raise RuntimeError("job failed")
    assert not cache.is_locked("a")


def test_two_tier_offloads_to_ram_then_drops() -> None:
    # A non-CPU execution device makes RAM a second tier; Fake objects are not moved, only accounted.
    cache = cache_with(100, device="meta", ram=50)
    for key in ("a", "b"):
        cache.get(key, lambda k=key: Fake(k, 40))
        with cache.use(key):
            pass
    assert cache.device_bytes() == 80 and cache.ram_bytes() == 0
    cache.get("c", lambda: Fake("c", 40))
    with cache.use("c"):
        assert cache.device_bytes() <= 100
        assert cache.stats.offloads == 1  # a, the least recently used, went to RAM
        assert "a" in cache and cache.ram_bytes() == 40
    cache.get("d", lambda: Fake("d", 40))  # RAM would hold 80 > 50: the oldest there (a) is dropped
    assert "a" not in cache and cache.stats.drops == 1
    with cache.use("d"):
        assert cache.stats.offloads == 2  # b made room on the device
    assert cache.ram_bytes() <= 50
    assert set(cache.keys()) == {"b", "c", "d"}


def test_unload_all_keeps_locked_entries() -> None:
    cache = cache_with(1000)
    cache.get("a", lambda: Fake("a", 10))
    cache.get("b", lambda: Fake("b", 10))
    with cache.use("a"):
        dropped = cache.unload_all()
        assert dropped == ["b"]
        assert "a" in cache


def test_module_bytes_counts_parameters_and_buffers() -> None:
    layer = torch.nn.BatchNorm1d(4)  # 8 params + 8 running stats + 1 counter (int64)
    assert module_bytes(layer) == (4 + 4 + 4 + 4) * 4 + 8
    assert module_bytes("tokenizer") == 0


def test_cuda_budget_is_ours_plus_usable_minus_reserve() -> None:
    gib = 1 << 30
    reading = DeviceMemory(total=24 * gib, driver_free=6 * gib, reserved=12 * gib, allocated=10 * gib)
    # 10 GiB held by the cache + 6 free at the driver + 2 in the allocator's pool - 2 reserve
    assert cuda_budget(2 * gib, 10 * gib, lambda: reading) == 16 * gib
    tight = DeviceMemory(total=8 * gib, driver_free=1 * gib, reserved=0, allocated=0)
    assert cuda_budget(8 * gib, 0, lambda: tight) == 0


def test_dtype_is_fp32_on_cpu_and_half_on_gpu() -> None:
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("cuda"), "bfloat16") == torch.bfloat16
