"""Brute-force protection for ``--auth``: wrong passwords from one client address earn a growing wait.

The first ``free_attempts`` wrong passwords cost nothing; each further one locks the address out for
``base_delay`` seconds, doubled every time (1, 2, 4, ... up to ``max_delay``). While locked out every login
attempt, right or wrong, gets 429 with the wait in its message. A successful login clears the record.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any

# Where a proxy in front of the app sits: loopback (a share tunnel) or a private network (a Space's router).
PROXY_NETWORKS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, free_attempts: int, base_delay: float = 1.0, max_delay: float = 600.0,
                 clock: Any = time.monotonic) -> None:
        self.free_attempts = free_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, address: str) -> float:
        """Seconds this address must still wait before its next attempt (0: go ahead)."""
        with self._lock:
            record = self._records.get(address)
            return max(0.0, record.locked_until - self.clock()) if record else 0.0

    def failed(self, address: str) -> float:
        """Record a wrong password; returns the lock-out it earned (0 while still within the free attempts)."""
        with self._lock:
            record = self._records.setdefault(address, _Record())
            record.failures += 1
            over = record.failures - self.free_attempts
            delay = 0.0 if over <= 0 else min(self.base_delay * 2 ** (over - 1), self.max_delay)
            record.locked_until = self.clock() + delay
            if len(self._records) > 10_000:  # forget the oldest quiet addresses, never the locked ones
                now = self.clock()
                for key in [k for k, r in self._records.items() if r.locked_until < now][:5_000]:
                    del self._records[key]
            return delay

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._records.pop(address, None)


def client_address(scope: dict[str, Any]) -> str:
    """The caller's address; behind a local or private proxy (share tunnel, Spaces) the one it forwarded."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    try:
        address = ipaddress.ip_address(peer)
        behind_proxy = address.is_loopback or any(address in net for net in PROXY_NETWORKS)
    except (ValueError, TypeError):
        behind_proxy = False
    if behind_proxy:
        for key, value in scope.get("headers", []):
            if key == b"x-forwarded-for":
                # The last entry is the one the nearest proxy added; earlier ones are the client's to forge.
                forwarded = value.decode("latin-1").split(",")[-1].strip()
                if forwarded:
                    return forwarded
    return peer
