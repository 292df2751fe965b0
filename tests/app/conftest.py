"""Start the real app (python app.py) in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO


@dataclass
class RunningApp:
    url: str
    home: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(home: Path, *args: str, env_extra: dict[str, str] | None = None, port: int | None = None) -> RunningApp:
    """Start ``python app.py`` offline on loopback without waiting for it (see :func:`wait_ready`)."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTRAIT_STUDIO_")}
    env.update(PORTRAIT_STUDIO_HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.update(env_extra or {})
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "app.log"
    log_file = open(log_path, "a")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), *args], cwd=REPO, env=env, stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    return RunningApp(f"http://127.0.0.1:{port}/", home, process, log_path)


def wait_ready(app: RunningApp, timeout: float = 120) -> RunningApp:
    """Wait until the app answers HTTP (a 401 login wall counts as up); kill it and raise otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"app exited with {app.process.returncode}:\n{app.log()[-4000:]}")
        try:
            with urllib.request.urlopen(app.url, timeout=2) as response:
                if response.status == 200:
                    return app
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return app
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    app.process.kill()
    raise RuntimeError(f"app did not answer on {app.url} within {timeout}s:\n{app.log()[-4000:]}")


def start_app(home: Path, *args: str, env_extra: dict[str, str] | None = None, timeout: float = 120) -> RunningApp:
    return wait_ready(launch(home, *args, env_extra=env_extra), timeout)


def stop_app(app: RunningApp) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        app.process.kill()


@pytest.fixture(scope="session")
def tiny_app(tiny_home: Path) -> Iterator[RunningApp]:
    app = start_app(tiny_home, "--profile", "tiny")
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def offline_default_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    app = start_app(tmp_path_factory.mktemp("offline_home"), "--profile", "default", "--offline")
    yield app
    stop_app(app)
