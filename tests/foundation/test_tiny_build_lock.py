"""Two processes that share one tiny-models folder build a role once: the second waits for the first's
build and uses it, instead of building again and replacing the folder under the first one's loader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Each process imports everything first, says so, then waits for the go file, so both ask for the role at once.
ASK_FOR_ROLE = """
import os, sys, time
from pathlib import Path
from portrait_studio.config import Settings
from portrait_studio.models.locator import ModelLocator
home, go = Path(sys.argv[1]), Path(sys.argv[2])
locator = ModelLocator(Settings(home=home, profile="tiny"))
print("waiting", flush=True)
while not go.exists():
    time.sleep(0.01)
path = locator.path("animegan_paprika")
print(os.stat(path.parent).st_ino, flush=True)
"""


def test_two_processes_asking_at_once_get_one_build(tmp_path: Path) -> None:
    home, go = tmp_path / "home", tmp_path / "go"
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    processes = [
        subprocess.Popen([sys.executable, "-c", ASK_FOR_ROLE, str(home), str(go)], env=env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for process in processes:  # both are past their imports and waiting (a fixed sleep waited 3 s, or too little)
        assert process.stdout.readline().strip() == "waiting", process.communicate(timeout=120)[1]
    go.touch()
    results = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr
    inodes = {stdout.strip() for stdout, _ in results}
    # One folder: a second build would have replaced it (os.replace of another staging folder, another inode).
    assert len(inodes) == 1, inodes
    folder = home / "tiny-models" / "animegan_paprika"
    assert str(folder.stat().st_ino) in inodes
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".animegan_paprika-")]  # no staging left
