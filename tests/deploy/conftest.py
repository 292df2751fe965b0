"""Two real apps (python app.py) on loopback, started once for tests/deploy (the public one first, then ZeroGPU).

- ``public_app``: a public deployment as a share link runs it (``PORTRAIT_STUDIO_PUBLIC=1``), no password,
  a 1 MB upload cap. Visitors are told apart by the visitor cookie.
- ``guarded_app``: a password (``--auth``), ZeroGPU simulated by the stub ``spaces`` package in
  ``zerogpu_stub/`` (arguments and results pickled as across ZeroGPU's process boundary), one planned
  out-of-memory (the first stylize job), one planned slow job (the first photo check holds the GPU for
  ``SLOW_JOB_SECONDS``) and a queue with room for one waiting job.

Both share the session's tiny models (built once, in this process, while the apps boot). The apps are
package-scoped: they stop after the last test of tests/deploy, which tests/conftest.py schedules as one block on
one worker. Kept to the session's end, the two idle apps used about 11% of a core for the rest of the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portrait_studio.config import Settings
from tests.app.conftest import RunningApp, launch, stop_app, wait_ready
from tests.conftest import REPO, share_tiny_models

STUB_DIR = Path(__file__).resolve().parent / "zerogpu_stub"
USER, PASSWORD = "ada", "correct-horse-battery"
GUARDED_QUEUE_SIZE = 1
UPLOAD_CAP_MB = 1
UPLOAD_REQUEST_CAP_MB = 2  # all files of one upload request together
SLOW_JOB_SECONDS = 8
ZEROGPU_PRELOADED_ROLES = (  # what portrait_studio/preload.py loads on the tiny profile
    "base", "controlnet_canny", "controlnet_openpose", "motion_adapter", "motion_adapter_v3",
    "animatediff_lightning", "sparsectrl_rgb", "animegan_celeba_distill", "animegan_face_paint_512_v1",
    "animegan_face_paint_512_v2", "animegan_paprika", "sadtalker", "gfpgan", "face_detection", "face_parsing",
    "aniportrait", "wav2vec2", "vae_ft_mse", "aniportrait_image_encoder",
)


ZEROGPU_START_SECONDS = 300  # ~35 CPU-seconds of imports and loads; minutes when the two cores are shared


def port_of(app: RunningApp) -> int:
    return int(app.url.rstrip("/").rsplit(":", 1)[1])


@dataclass
class DeployApps:
    public: RunningApp
    guarded: RunningApp
    stub_log: Path
    public_launch: tuple[tuple[str, ...], dict[str, str]]

    def restart_public(self) -> RunningApp:
        """Start the public app again on the same home and port (after a test killed it)."""
        args, env = self.public_launch
        fresh = wait_ready(launch(self.public.home, *args, env_extra=env, port=port_of(self.public)))
        self.public.process = fresh.process  # the fixture's object: later tests use the new process
        return self.public


@pytest.fixture(scope="package")
def deploy_apps(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Settings) -> Iterator[DeployApps]:
    public_home = tmp_path_factory.mktemp("public_home")
    guarded_home = tmp_path_factory.mktemp("guarded_home")
    for home in (public_home, guarded_home):
        share_tiny_models(home, tiny_settings)
    stub_log = guarded_home / "zerogpu-stub.log"
    common = {"PORTRAIT_STUDIO_PUBLIC": "1", "PORTRAIT_STUDIO_MAX_UPLOAD_MB": str(UPLOAD_CAP_MB),
              "PORTRAIT_STUDIO_MAX_UPLOAD_REQUEST_MB": str(UPLOAD_REQUEST_CAP_MB)}
    public_args = ("--profile", "tiny")
    public = launch(public_home, *public_args, env_extra=common)
    guarded = None
    try:
        wait_ready(public)
        # The tiny base model both share (a no-op when another test area built it), built while no app boots:
        # Gradio gives a booting app one 3 s try at its own first page and exits when it misses it.
        # Likewise every role the ZeroGPU app places at start-up: weights a Space downloads once are test
        # fixtures here, shared by the session, not part of the start-up the 120 s wait bounds.
        from portrait_studio.models.locator import ModelLocator

        for role in ZEROGPU_PRELOADED_ROLES:
            ModelLocator(tiny_settings).path(role)
        # Then the ZeroGPU app, whose start-up loads every tab's models: booting beside it, the public app's
        # first page missed Gradio's own 3 s localhost check on a loaded two-core machine.
        guarded = launch(
            guarded_home, "--profile", "tiny", "--auth", f"{USER}:{PASSWORD}",
            env_extra={**common, "SPACES_ZERO_GPU": "true", "ZEROGPU_STUB_LOG": str(stub_log),
                       "PYTHONPATH": os.pathsep.join([str(STUB_DIR), str(REPO)]),
                       "PORTRAIT_STUDIO_INJECT_FAULT": f"oom:stylize:1,slow:check_photos:1:{SLOW_JOB_SECONDS}",
                       "PORTRAIT_STUDIO_QUEUE_SIZE": str(GUARDED_QUEUE_SIZE)},
        )
        # Its start-up places every tab's models by design (no load inside a billed call): allow for that.
        wait_ready(guarded, timeout=ZEROGPU_START_SECONDS)
        yield DeployApps(public, guarded, stub_log, (public_args, common))
    finally:
        stop_app(public)
        if guarded is not None:
            stop_app(guarded)


@pytest.fixture(scope="package")
def public_app(deploy_apps: DeployApps) -> RunningApp:
    return deploy_apps.public


@pytest.fixture(scope="package")
def guarded_app(deploy_apps: DeployApps) -> RunningApp:
    return deploy_apps.guarded


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five real photos of one person (grace_hopper.jpg variants), small enough for the upload cap."""
    from tests.likeness.helpers import photo_variants

    return photo_variants(tmp_path_factory.mktemp("photos"), count=5)


@pytest.fixture(scope="session")
def lora_file(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Settings) -> Path:
    """A valid kohya LoRA for the tiny base model (importable in the Library)."""
    from portrait_studio.models.locator import ModelLocator
    from portrait_studio.registry import base_shapes_from_model_dir
    from tests.registry.lora_test_files import lora_tensors, write_kohya

    shapes = base_shapes_from_model_dir(ModelLocator(tiny_settings).path("base"))
    return write_kohya(tmp_path_factory.mktemp("lora") / "style.safetensors", lora_tensors(shapes), alpha=2.0)
