"""Start the real app (python app.py) in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


def start_app(home: Path, *args: str, env_extra: dict[str, str] | None = None, timeout: float = 120) -> RunningApp:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTRAIT_STUDIO_")}
    env.update(PORTRAIT_STUDIO_HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.update(env_extra or {})
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "app.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), *args], cwd=REPO, env=env, stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return RunningApp(url, home, process, log_path)
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"app did not answer on {url} within {timeout}s:\n{log_path.read_text()}")


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
