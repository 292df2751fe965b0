"""The processes of a data-parallel training run share one stdout: each progress line must arrive whole."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from tests.conftest import REPO

LINES = 20000
# Unbuffered, as under a launcher that sets PYTHONUNBUFFERED: print() then writes text and newline apart.
# Both writers start at one agreed moment, after their imports, so their lines overlap in time.
WRITER = """
import sys, time
from portrait_studio.likeness.worker import say_line
rank, start, lines = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
while time.time() < start:
    pass
for step in range(lines):
    say_line(f"[process {rank}] step {step}/{lines} loss 1.{step % 10000:04d}")
"""


def test_two_processes_lines_never_run_together() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    start = time.time() + 4.0
    read, write = os.pipe()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(rank), str(start), str(LINES)], stdout=write,
                                env=env, cwd=REPO) for rank in (0, 1)]
    os.close(write)
    with os.fdopen(read) as stream:
        lines = stream.read().splitlines()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    well_formed = re.compile(rf"^\[process [01]\] step \d+/{LINES} loss 1\.\d{{4}}$")
    assert [line for line in lines if not well_formed.match(line)] == []
    assert len(lines) == 2 * LINES
