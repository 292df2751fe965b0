"""Talk test fixtures: speech from espeak-ng and a real portrait."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About one second of real synthesized speech (CI installs espeak-ng)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "hello.wav"
    subprocess.run([exe, "-s", "190", "-w", str(path), "Hello there, friend."], check=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def grace_hopper() -> Image.Image:
    import matplotlib.cbook

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as image:
        return image.convert("RGB")
