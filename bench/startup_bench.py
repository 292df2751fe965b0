"""Start-up: time from process start to the first HTTP 200, our app against a bare Gradio app.

Both run here side by side in the same run, alternating which starts first in each round, after one
untimed start of each (so both see a warm disk cache). Ours runs ``app.py --profile tiny`` on a home of
its own, offline, as a hobbyist restarts it; the bare app (``bare_app.py``) has the same five tabs, each with
an image, a textbox and a button. Target: median ours / median bare <= 1.3.
"""

from __future__ import annotations

import os
import resource
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
TIMEOUT_SECONDS = 600.0  # a loaded 2-core machine has taken minutes


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


def seconds_to_first_page(command: list[str], env: dict[str, str], port: int) -> tuple[float, float]:
    """Start ``command``, poll http://127.0.0.1:port/ until it answers 200, then stop it.

    Returns (wall seconds from start to the 200, CPU seconds the process used in all). CPU time includes the
    short shutdown but hardly depends on what else the machine runs, so it backs up the wall time.
    """
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the CPU use of children waited for
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = None
    try:
        while wall is None:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode} before answering")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        wall = time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                time.sleep(0.02)
            if wall is None and time.perf_counter() - started > TIMEOUT_SECONDS:
                raise RuntimeError(f"{command} did not answer within {TIMEOUT_SECONDS:.0f}s")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children_before.ru_utime) + (after.ru_stime - children_before.ru_stime)
    return wall, cpu


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        env = _environment(Path(tmp) / "home")

        def ours() -> tuple[float, float]:
            port = _free_port()
            return seconds_to_first_page([sys.executable, "app.py", "--profile", "tiny", "--port", str(port)],
                                         env, port)

        def bare() -> tuple[float, float]:
            port = _free_port()
            return seconds_to_first_page([sys.executable, str(REPO / "bench" / "bare_app.py"), str(port)], env, port)

        bare(), ours()  # untimed: both start on a warm disk cache
        wall: dict[str, list[float]] = {"bare": [], "ours": []}
        cpu: dict[str, list[float]] = {"bare": [], "ours": []}
        for round_index in range(STARTS):
            order = (("bare", bare), ("ours", ours)) if round_index % 2 == 0 else (("ours", ours), ("bare", bare))
            for name, start in order:
                seconds, cpu_seconds = start()
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
            print(f"  round {round_index + 1}: bare {wall['bare'][-1]:.2f}s (cpu {cpu['bare'][-1]:.2f}s), "
                  f"ours {wall['ours'][-1]:.2f}s (cpu {cpu['ours'][-1]:.2f}s)", file=sys.stderr, flush=True)
    bare_wall, ours_wall = statistics.median(wall["bare"]), statistics.median(wall["ours"])
    bare_cpu, ours_cpu = statistics.median(cpu["bare"]), statistics.median(cpu["ours"])
    spread = ", ".join(f"{t:.1f}" for t in sorted(wall["ours"]))
    bench = "start-up to first page"
    return [
        {"bench": bench, "case": f"bare Gradio, 5 tabs (median of {STARTS})", "seconds": bare_wall, "ratio": 1.0,
         "ratio_means": "baseline"},
        {"bench": bench, "case": f"Portrait Studio, tiny (median of {STARTS}; {spread} s)", "seconds": ours_wall,
         "ratio": ours_wall / bare_wall, "ratio_means": f"x bare Gradio, wall time (target <= {TARGET_RATIO})"},
        {"bench": bench, "case": "Portrait Studio, tiny: CPU seconds", "seconds": ours_cpu,
         "ratio": ours_cpu / bare_cpu, "ratio_means": f"x bare Gradio's {bare_cpu:.2f} CPU s (load-independent)"},
    ]
