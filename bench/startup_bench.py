"""Start-up: time from process start to the first HTTP 200, our app against a bare Gradio app.

Both run here side by side in the same run, alternating which starts first in each round, after one
untimed start of each (so both see a warm disk cache). Ours runs ``app.py --profile tiny`` on a home of
its own, offline, as a hobbyist restarts it; the bare app (``bare_app.py``) has the same five tabs, each with
an image, a textbox and a button. Target: median ours / median bare <= 1.3.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STARTS = 5
TARGET_RATIO = 1.3
TIMEOUT_SECONDS = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTRAIT_STUDIO_", "SPACE", "GRADIO_"))}
    # Gradio's analytics are off in both (our app turns them off itself); no network either way.
    env.update(PORTRAIT_STUDIO_HOME=str(home), HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(REPO))
    return env


def seconds_to_first_page(command: list[str], env: dict[str, str], port: int) -> float:
    """Start ``command``, poll http://127.0.0.1:port/ until it answers 200, stop it; seconds from start to 200."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}: {process.stderr.read()[-2000:]!r}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() - started > TIMEOUT_SECONDS:
                raise RuntimeError(f"{command} did not answer within {TIMEOUT_SECONDS:.0f}s")
            time.sleep(0.02)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        env = _environment(Path(tmp) / "home")

        def ours() -> float:
            port = _free_port()
            return seconds_to_first_page([sys.executable, "app.py", "--profile", "tiny", "--port", str(port)],
                                         env, port)

        def bare() -> float:
            port = _free_port()
            return seconds_to_first_page([sys.executable, str(REPO / "bench" / "bare_app.py"), str(port)], env, port)

        bare(), ours()  # untimed: both start on a warm disk cache
        times: dict[str, list[float]] = {"bare": [], "ours": []}
        for round_index in range(STARTS):
            order = (("bare", bare), ("ours", ours)) if round_index % 2 == 0 else (("ours", ours), ("bare", bare))
            for name, start in order:
                times[name].append(start())
            print(f"  round {round_index + 1}: bare {times['bare'][-1]:.2f}s, ours {times['ours'][-1]:.2f}s",
                  file=sys.stderr, flush=True)
    bare_median, ours_median = statistics.median(times["bare"]), statistics.median(times["ours"])
    spread = ", ".join(f"{t:.1f}" for t in sorted(times["ours"]))
    return [
        {"bench": "start-up to first page", "case": f"bare Gradio, 5 tabs (median of {STARTS})",
         "seconds": bare_median, "ratio": 1.0, "ratio_means": "baseline"},
        {"bench": "start-up to first page", "case": f"Portrait Studio, tiny (median of {STARTS}; {spread} s)",
         "seconds": ours_median, "ratio": ours_median / bare_median,
         "ratio_means": f"x bare Gradio (target <= {TARGET_RATIO})"},
    ]
