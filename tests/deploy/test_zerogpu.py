"""ZeroGPU serving anonymous visitors: per-request durations, preload, cancel across processes, quota.

The durations are read off the real UI: the app is built, and each model handler's own duration function
is called with its event's input components at their default values (and at their maximum values).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from portrait_studio import gpu_time
from portrait_studio.config import settings_from_env
from portrait_studio.errors import InputError
from portrait_studio.media.audio import write_wav
from tests.conftest import REPO

MODEL_EVENTS = ("stylize", "anime", "animate", "talk", "check_photos")
TYPICAL_SPEECH_SECONDS = 30.0  # the talk default below: a half-minute clip at the default renderer
PHOTOS_AT_DEFAULT = 20


@pytest.fixture(scope="module")
def default_ui(tmp_path_factory: pytest.TempPathFactory):
    """The app's Blocks over the *default* profile (real SD1.5 sizes), offline and without weights."""
    from portrait_studio.services import Services
    from ui import build_app

    home = tmp_path_factory.mktemp("zerogpu_home")
    settings = settings_from_env({}, home=home, offline=True, profile="default")
    services = Services.create(settings)
    demo = build_app(services)
    blocks = {block.api_name: block for block in demo.fns.values() if block.api_name in MODEL_EVENTS}
    assert set(blocks) == set(MODEL_EVENTS)
    return types.SimpleNamespace(blocks=blocks, services=services)


def _speech(folder: Path, seconds: float) -> str:
    t = np.arange(int(seconds * 16000)) / 16000
    return str(write_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), folder / f"speech-{seconds:g}.wav"))


def _inputs(block, overrides: dict[int, object]) -> list:
    return [overrides.get(i, getattr(c, "value", None)) for i, c in enumerate(block.inputs)]


def _maximum(block) -> dict[int, object]:
    """Every slider at its maximum, every cost-adding switch on (Fast off: it makes Animate cheaper)."""
    import gradio as gr

    values: dict[int, object] = {}
    for index, component in enumerate(block.inputs):
        if isinstance(component, gr.Slider):
            values[index] = component.maximum
        elif isinstance(component, gr.Checkbox) and "Fast" not in str(component.label):
            values[index] = True
        elif isinstance(component, gr.Radio) and component.label == "Renderer size":
            values[index] = 512
        elif isinstance(component, gr.Radio) and component.label == "Output":
            values[index] = "full"
    return values


def test_every_tab_asks_at_most_a_minute_at_default_settings(default_ui, tmp_path, capsys) -> None:
    speech = _speech(tmp_path, TYPICAL_SPEECH_SECONDS)
    special = {"talk": {2: speech}, "check_photos": {0: [f"photo{i}.jpg" for i in range(PHOTOS_AT_DEFAULT)]}}
    asks = {}
    for name, block in default_ui.blocks.items():
        asks[name] = block.fn.gpu_seconds(*_inputs(block, special.get(name, {})))
    with capsys.disabled():
        print("\nZeroGPU duration at default settings (s):",
              ", ".join(f"{name} {seconds}" for name, seconds in asks.items()),
              f"(talk with {TYPICAL_SPEECH_SECONDS:g} s of speech, photo check with {PHOTOS_AT_DEFAULT} photos)")
    assert all(gpu_time.FLOOR_SECONDS <= s <= gpu_time.DEFAULT_REQUEST_TARGET for s in asks.values()), asks
    assert asks["animate"] > asks["anime"]  # sized by frames x steps, not a fixed figure


def test_maximum_settings_ask_at_most_300_s_or_are_refused_with_the_setting_to_lower(default_ui, tmp_path,
                                                                                   capsys) -> None:
    longest = _speech(tmp_path, default_ui.services.settings.max_audio_seconds)
    special = {"talk": {2: longest}, "check_photos": {0: [f"p{i}.jpg" for i in range(60)]}}
    outcomes = {}
    for name, block in default_ui.blocks.items():
        args = _inputs(block, {**_maximum(block), **special.get(name, {})})
        try:
            outcomes[name] = block.fn.gpu_seconds(*args)
            assert outcomes[name] <= gpu_time.MAX_CALL_SECONDS
        except InputError as exc:
            assert "Lower" in str(exc) and f"at most {gpu_time.MAX_CALL_SECONDS} s" in str(exc)
            outcomes[name] = f"refused ({str(exc).split('. Lower ')[1].rstrip('.')})"
    with capsys.disabled():
        print("\nZeroGPU duration at maximum settings:", "; ".join(f"{k}: {v}" for k, v in outcomes.items()))
    assert str(outcomes["animate"]).startswith("refused") and "Frames or Steps" in outcomes["animate"]
    assert str(outcomes["talk"]).startswith("refused")


def test_a_request_over_the_cap_is_refused_before_zerogpu_is_asked(monkeypatch) -> None:
    import gradio as gr

    import ui.gpu as gpu

    scheduled = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (lambda fn: (lambda *a, **k: (scheduled.append(duration(*a, **k)), fn(*a, **k))[1]))
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    handler = gpu.on_gpu(seconds=lambda frames: gpu_time.animate_request(frames, 60, 512, 512).seconds,
                         task="animate")(lambda frames: f"{frames} frames")
    assert handler(16) == "16 frames" and scheduled == [gpu_time.animate_request(16, 60, 512, 512).seconds]
    with pytest.raises(gr.Error, match="Lower Frames or Steps"):
        handler(64)
    assert len(scheduled) == 1  # never scheduled


def test_a_quota_refusal_becomes_a_plain_message(monkeypatch) -> None:
    import gradio as gr

    import ui.gpu as gpu

    def refusing_gpu(duration):
        def wrap(fn):
            def run(*args, **kwargs):
                seconds = duration(*args, **kwargs)  # as spaces.zero.client.schedule words it
                raise gr.Error(f"You have exceeded your ZeroGPU quota ({seconds}s requested vs. 12s left). "
                               "Try again in 1:02:03. ", title="ZeroGPU quota exceeded")
            return run
        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=refusing_gpu))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    handler = gpu.on_gpu(seconds=lambda: 45, task="stylize")(lambda: "never")
    with pytest.raises(gr.Error) as caught:
        handler()
    message = str(caught.value)
    assert "Sign in" in message and "try again later" in message and "45 s" in message
    assert "ZeroGPU quota" not in message and "1:02:03" not in message


@pytest.mark.parametrize("zero", [True, False])
def test_no_process_wide_lock_on_zerogpu(monkeypatch, zero: bool) -> None:
    from ui.gpu import GpuSlot

    if zero:
        monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    else:
        monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    slot, inside, peak, guard = GpuSlot(), [0], [0], threading.Lock()

    def job() -> None:
        with guard:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.3)
        with guard:
            inside[0] -= 1

    threads = [threading.Thread(target=slot.run, args=("stylize", job)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == (2 if zero else 1)  # ZeroGPU gives each call its own slice; locally one at a time


JOB = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from portrait_studio.errors import CancelledError
    from portrait_studio.progress import CancelTokens

    token = CancelTokens(Path(sys.argv[1])).start("session-1", "animate")
    print("running", flush=True)
    try:
        for _ in range(600):  # 30 s at most
            token.raise_if_cancelled()
            time.sleep(0.05)
    except CancelledError:
        sys.exit(3)
    sys.exit(0)
""")


def test_cancel_reaches_a_job_running_in_another_process(tmp_path) -> None:
    """ZeroGPU runs the handler in a forked worker: the Cancel button's process must reach it."""
    from portrait_studio.progress import CancelTokens

    markers = tmp_path / "cancel"
    worker = subprocess.Popen([sys.executable, "-c", JOB, str(markers)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "running"
        app_side = CancelTokens(markers)  # the app process: it has no token of the worker's
        assert app_side.cancel("session-1", "animate")
        assert worker.wait(timeout=60) == 3  # 3: it stopped on the cancel (0 would be after 30 s of running)
    finally:
        worker.kill()
    assert not app_side.cancel("session-2", "animate")  # nothing running there: nothing to cancel


def test_a_cancel_meant_for_an_earlier_run_does_not_stop_the_next(tmp_path) -> None:
    from portrait_studio.progress import CancelTokens

    tokens = CancelTokens(tmp_path)
    first = tokens.start("s", "talk")
    assert tokens.cancel("s", "talk") and first.cancelled
    second = tokens.start("s", "talk")  # the next run of the same tab (the first never called finish)
    assert not second.cancelled
    tokens.finish("s", "talk", second)
    assert list(tmp_path.iterdir()) == []


def test_zerogpu_stub_calls_ask_their_size_and_load_no_model_inside_the_call(deploy_apps, tmp_path) -> None:
    from gradio_client import Client, handle_file

    from tests.deploy.api import call
    from tests.deploy.conftest import PASSWORD, USER

    app = deploy_apps.guarded
    preloaded = next(line for line in app.log().splitlines() if "ZeroGPU: preloaded" in line)
    for key in ("base:unet", "controlnet_canny:model", "controlnet_openpose:model", "base+motion_adapter",
                "animegan_", "sadtalker256", "sadtalker512", "gfpgan"):
        assert key in preloaded, (key, preloaded)
    client = Client(app.url, verbose=False, auth=(USER, PASSWORD))
    since = len(app.log())
    stub_lines = len(deploy_apps.stub_log.read_text().splitlines())
    call(client, "/animate", prompt_text="a portrait", n_frames=4, step_count=2, seed_value=1)
    # Public maxima keep Animate under the cap (refused before any GPU is asked); AniPortrait on 12 s of speech
    # is over it, refused up front by its price with the way out.
    with pytest.raises(Exception, match="greater than maximum"):
        call(client, "/animate", prompt_text="a portrait", n_frames=64, step_count=60, seed_value=1)
    t = np.arange(8000 * 12) / 8000  # 12 s of an audible tone at 8 kHz (a silent file is refused first)
    speech = write_wav((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), tmp_path / "speech.wav", 8000)
    with pytest.raises(Exception, match="choose SadTalker"):
        call(client, "/talk", speech=handle_file(str(speech)), engine_name="aniportrait", n_steps=25)
    calls = [line for line in deploy_apps.stub_log.read_text().splitlines()[stub_lines:] if line.startswith("call")]
    # One call, the handler's (its qualified name may carry the tab builder's prefix): tiny models ask for
    # the floor; the refused requests never asked.
    assert len(calls) == 1 and calls[0].startswith("call ") and calls[0].endswith(
        f"on_animate {gpu_time.FLOOR_SECONDS}"), calls
    log = app.log()[since:]
    assert "gpu-call task=animate loads=0" in log, log[-3000:]
    assert math.isfinite(gpu_time.FLOOR_SECONDS)
