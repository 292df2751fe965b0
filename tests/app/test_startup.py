"""Fast start: the first page is served before torch, diffusers or a face library is imported, and
training jobs left unfinished are resumed by a background thread, not before the server is up.

How fast, compared with a bare Gradio app, is measured by ``bench/run.py startup`` (never timed here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from portrait_studio.config import settings_from_env
from portrait_studio.likeness.jobs import JobManager
from portrait_studio.models.manager import ModelManager
from portrait_studio.registry import LoraRegistry
from portrait_studio.services import Services
from tests.app.conftest import free_port
from tests.conftest import REPO
from tests.likeness.helpers import photo_variants, tiny_config

# Each costs from a fraction of a second (cv2, scipy) to seconds (torch, diffusers) at import: loaded on first use.
HEAVY_MODULES = ("torch", "torchvision", "diffusers", "transformers", "peft", "accelerate", "facexlib", "dlib",
                 "basicsr", "gfpgan", "cv2", "scipy", "skimage", "safetensors", "imageio_ffmpeg")

# Runs the real app.main() in a thread, waits for the first HTTP 200, then reports what is imported.
PROBE = """
import json, os, sys, threading, time, urllib.request
port, heavy = sys.argv[1], json.loads(sys.argv[2])
sys.argv = ["app.py", "--port", port, "--profile", "tiny"]
import app
threading.Thread(target=app.main, daemon=True).start()
deadline = time.monotonic() + 400  # a limit for a loaded machine, not a timing
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            if response.status == 200:
                break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
print(json.dumps({"heavy": sorted(m for m in heavy if m in sys.modules), "spaces": "spaces" in sys.modules}))
sys.stdout.flush()
os._exit(0)
"""


def test_first_page_is_served_without_importing_heavy_libraries(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTRAIT_STUDIO_", "SPACE", "GRADIO_"))}
    env.update(PORTRAIT_STUDIO_HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO))
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(free_port()), json.dumps(HEAVY_MODULES)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=480,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"imported before the first page: {report['heavy']} (import them on first use)"
    assert report["spaces"] is False  # only a Space needs `spaces` (tests/deploy/test_spaces.py checks that side)


def test_services_leave_unfinished_jobs_to_a_background_thread(tmp_path: Path) -> None:
    settings = settings_from_env({}, home=tmp_path / "home", profile="tiny")
    photos = photo_variants(tmp_path / "photos", count=5)
    job_id = JobManager(settings, autostart=False).submit("local", "Ada", photos, tiny_config(), consent=True)

    created = Services.create(settings, resume_jobs=False)  # what app.py does before the server is up
    try:
        assert created.jobs.queue() == []  # nothing resumed (and nothing started) yet
    finally:
        created.jobs.shutdown()

    # After launch: the same job is queued again by a thread of its own (a quiet JobManager, so no worker starts).
    services = Services(settings=settings, manager=ModelManager(settings), registry=LoraRegistry(settings.registry_dir),
                        jobs=JobManager(settings, autostart=False))
    thread = services.resume_jobs_in_background()
    thread.join(timeout=30)
    assert not thread.is_alive() and thread.name == "resume-training-jobs"
    assert [status.job_id for status in services.jobs.queue()] == [job_id]


def test_model_manager_makes_device_dtype_and_cache_on_first_use(tmp_path: Path) -> None:
    import threading

    import torch

    manager = ModelManager(settings_from_env({}, home=tmp_path / "home", profile="tiny", device="cpu"))
    assert manager._device is None and manager._cache is None  # nothing torch-related at creation
    made: dict = {}
    # dtype first: it needs the device, under the same lock (a thread, so a deadlock fails instead of hanging).
    first_use = threading.Thread(target=lambda: made.update(dtype=manager.dtype, cache=manager.cache), daemon=True)
    first_use.start()
    first_use.join(timeout=60)
    assert not first_use.is_alive(), "device/dtype/cache deadlocked on first use"
    assert made["dtype"] == torch.float32 and made["cache"].device == manager.device == torch.device("cpu")
    assert manager.cache is made["cache"] and manager.unload_all() == []
