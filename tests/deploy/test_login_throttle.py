"""Login attempts are rate-limited per client address with a growing delay (finding 6)."""

from __future__ import annotations

import time

from tests.deploy.conftest import PASSWORD, USER
from tests.deploy.rawhttp import request


def _login(app, password: str, forwarded: str = "") -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    body = f"username={USER}&password={password}".encode()
    return request(app, "POST", "/login", body=body, headers=headers).status


def test_wrong_passwords_earn_a_growing_wait_per_address(guarded_app) -> None:
    assert [_login(guarded_app, "guess") for _ in range(3)] == [400, 400, 400]  # the free attempts
    assert _login(guarded_app, "guess") == 400  # the fourth locks the address out for 1 s
    assert _login(guarded_app, PASSWORD) == 429  # even the right password waits
    assert _login(guarded_app, PASSWORD, forwarded="198.51.100.7") == 200  # another address is not held up
    time.sleep(1.1)
    assert _login(guarded_app, "guess") == 400  # the fifth: 2 s
    time.sleep(1.1)
    reply = request(guarded_app, "POST", "/login", body=f"username={USER}&password={PASSWORD}".encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 429 and b"wait" in reply.body
    time.sleep(1.0)
    assert _login(guarded_app, PASSWORD) == 200  # and a success clears the record
    assert _login(guarded_app, "guess") == 400


def test_the_delay_doubles_and_is_capped() -> None:
    from ui.login_guard import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(free_attempts=2, base_delay=1.0, max_delay=8.0, clock=lambda: now[0])
    delays = [throttle.failed("203.0.113.1") for _ in range(8)]
    assert delays == [0, 0, 1, 2, 4, 8, 8, 8]
    assert throttle.wait_seconds("203.0.113.1") == 8 and throttle.wait_seconds("203.0.113.2") == 0
    now[0] += 8
    assert throttle.wait_seconds("203.0.113.1") == 0
    throttle.succeeded("203.0.113.1")
    assert throttle.failed("203.0.113.1") == 0


def test_the_client_address_behind_a_local_proxy_is_the_forwarded_one() -> None:
    from ui.login_guard import client_address

    def scope(peer: str, forwarded: str | None = None) -> dict:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (peer, 1), "headers": headers}

    assert client_address(scope("203.0.113.5")) == "203.0.113.5"
    assert client_address(scope("203.0.113.5", "10.0.0.1")) == "203.0.113.5"  # a public peer cannot forge it
    assert client_address(scope("127.0.0.1", "1.1.1.1, 198.51.100.2")) == "198.51.100.2"
    assert client_address(scope("10.1.2.3")) == "10.1.2.3"
