"""A Hugging Face Space build, emulated: the repository as it is, a clean virtual environment, plain pip.

A Gradio Space installs ``pre-requirements.txt`` (if any), then ``requirements.txt`` with plain
``pip install -r`` (build isolation on, no constraints file, no cache), then the SDK version the README names;
ZeroGPU hardware adds ``spaces``. Then it imports ``app.py``. This test does the same and then builds the
UI and imports every library the handlers load on first use, with and without ``spaces``.

It takes minutes (PyTorch alone is gigabytes), so it runs only with ``PORTRAIT_STUDIO_SPACE_BUILD=1``.
CI sets that when a requirement file changed since the last passing build (``tests/deploy/space_build.py``);
a pass records the new fingerprint in ``space_build_verified.txt``: commit it with the requirement change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.space_build import BUILD_FILES, record_verified
from tests.deploy.test_spaces import front_matter, pinned_in

pytestmark = [
    pytest.mark.space_build,
    pytest.mark.skipif(os.environ.get("PORTRAIT_STUDIO_SPACE_BUILD") != "1",
                       reason="slow (minutes): set PORTRAIT_STUDIO_SPACE_BUILD=1; CI does when requirements change"),
]

REPO = Path(__file__).resolve().parents[2]
# Bounds a hang, times nothing: on the shared 2-core machine one install took over 45 minutes.
INSTALL_TIMEOUT = 120 * 60

# Imports app, builds the UI as app.main() does, then imports what the handlers import on first use.
PROBE = """
import json, sys
import app
from portrait_studio.config import settings_from_env
settings = settings_from_env(profile="tiny", home=sys.argv[1])
app.prepare_environment(settings)
from portrait_studio.services import Services
from ui import build_app
services = Services.create(settings, resume_jobs=False)
build_app(services)
services.jobs.shutdown()
import accelerate, cv2, diffusers, dlib, facexlib, imageio_ffmpeg, peft, pillow_heif, scipy, torch, transformers
from portrait_studio.faces.compat import import_gfpgan_clean_arch
import_gfpgan_clean_arch()  # gfpgan, and basicsr under it
print(json.dumps({"spaces": getattr(app.spaces, "__name__", None), "torch": torch.__version__}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment minus anything that would change how pip builds or what Python imports."""
    drop = ("PIP_NO_BUILD_ISOLATION", "PIP_CONSTRAINT", "PIP_REQUIREMENT", "PYTHONPATH", "VIRTUAL_ENV",
            "PORTRAIT_STUDIO_", "SPACE", "GRADIO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def _run(command: list[str], cwd: Path, log: Path, env: dict[str, str], timeout: float = INSTALL_TIMEOUT) -> str:
    """Run ``command`` with its output going straight to ``log`` (so a slow or killed step leaves its trace)."""
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        start = out.tell()  # a byte offset: pip's progress bars are not ASCII
        try:
            done = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(command)} ran over {timeout:.0f} s; its output so far:\n"
                        f"{log.read_bytes()[start:].decode(errors='replace')[-4000:]}")
    output = log.read_bytes()[start:].decode(errors="replace")
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


def _copy_repository(target: Path) -> Path:
    """The files a Space receives: what git tracks (as they are in the work tree)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _python_of_version(version: str) -> str | None:
    """An interpreter of the Python the Space runs: this one when it matches, else ``pythonX.Y`` on PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return getattr(sys, "_base_executable", sys.executable)
    return shutil.which(f"python{version}")


def test_a_space_builds_from_the_repository_as_it_is(tmp_path: Path) -> None:
    config = front_matter()
    base_python = _python_of_version(str(config["python_version"]))
    if base_python is None:
        pytest.skip(f"the Space runs Python {config['python_version']}: no python{config['python_version']} here")
    space = _copy_repository(tmp_path / "space")
    log = tmp_path / "build.log"
    env = _clean_env()

    _run([base_python, "-m", "venv", str(tmp_path / "venv")], tmp_path, log, env)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir"]
    if (space / "pre-requirements.txt").is_file():
        _run([*pip, "-r", "pre-requirements.txt"], space, log, env)
    _run([*pip, "-r", "requirements.txt"], space, log, env)
    _run([*pip, f"gradio[oauth]=={config['sdk_version']}"], space, log, env)

    python = str(tmp_path / "venv" / "bin" / "python")
    probe_env = _clean_env(HF_HUB_OFFLINE="1", HOME=str(tmp_path), SPACE_ID="someone/portrait-studio",
                           CUDA_VISIBLE_DEVICES="")
    without = json.loads(_run([python, "-c", PROBE, str(tmp_path / "home")], space, log, probe_env,
                              timeout=600).strip().splitlines()[-1])
    assert without["spaces"] is None  # a CPU or GPU Space without the package: app.py does without it

    _run([*pip, f"spaces=={pinned_in('requirements-test.txt', 'spaces')}"], space, log, env)
    with_spaces = json.loads(_run([python, "-c", PROBE, str(tmp_path / "home")], space, log, probe_env,
                                  timeout=600).strip().splitlines()[-1])
    assert with_spaces["spaces"] == "spaces"  # imported first, as ZeroGPU needs
    assert with_spaces["torch"].split("+")[0] == pinned_in("requirements.txt", "torch")

    assert all(not (REPO / name).exists() or (space / name).is_file() for name in BUILD_FILES)
    record_verified(REPO)
