"""A slow job cannot hold the app (finding 3): public maxima, a time budget per job from its size and the device.

The device speed is a condition we cannot run here (no GPU), so the estimate is a pure function of its
figures and is tested with them; the timer that stops a running job is tested with a real thread and the
real cancel tokens the Cancel button uses.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio_client import Client

from portrait_studio.config import Settings
from portrait_studio.progress import CancelToken
from tests.deploy.api import call, stylize_args
from ui.common import CancelTokens, call_service


def public_settings(tmp_path, **changes) -> Settings:
    return Settings(home=tmp_path, profile="tiny", public=True).replace(**changes)


# The new modules are imported inside the unit tests, so that the tests against the running app also run
# (and fail) on a tree without them.


def test_public_maxima_are_lower_than_local_ones(tmp_path) -> None:
    from ui.limits import LOCAL_MAXIMA, maxima

    local = maxima(Settings(home=tmp_path))
    public = maxima(public_settings(tmp_path))
    assert local == LOCAL_MAXIMA
    for field in ("steps", "size", "images", "frames", "audio_seconds"):
        assert getattr(public, field) < getattr(local, field), field


def test_the_estimate_scales_with_the_job_and_the_device() -> None:
    from ui.limits import estimate_seconds

    one = estimate_seconds("cpu", steps=25, width=512, height=512)
    assert estimate_seconds("cpu", steps=50, width=512, height=512) == pytest.approx(2 * one)
    assert estimate_seconds("cpu", steps=25, width=1024, height=1024) == pytest.approx(4 * one)
    assert estimate_seconds("cpu", steps=25, width=512, height=512, images=4) == pytest.approx(4 * one)
    assert estimate_seconds("cpu", steps=25, width=512, height=512, frames=16) > 16 * one
    assert estimate_seconds("cuda:0", steps=25, width=512, height=512) < one / 100


def test_a_cpu_machine_refuses_what_a_gpu_machine_runs(tmp_path) -> None:
    from ui.limits import admit, check_budget

    settings = public_settings(tmp_path)
    services = SimpleNamespace(settings=settings, manager=SimpleNamespace(device="cpu"))
    job = {"steps": 50, "width": 512, "height": 512, "images": 4}
    with pytest.raises(gr.Error, match=r"limit per job is 10 min \(PORTRAIT_STUDIO_JOB_BUDGET_SECONDS\)"):
        admit(services, "u-a", "stylize", **job)
    admit(SimpleNamespace(settings=settings, manager=SimpleNamespace(device="cuda")), "u-a", "stylize", **job)
    with pytest.raises(gr.Error, match=r"Steps is 80; the most on this public app is 50 \(PORTRAIT_STUDIO_PUBLIC"):
        admit(SimpleNamespace(settings=settings, manager=SimpleNamespace(device="cuda")), "u-a", "stylize",
              steps=80)
    # Locally the owner's machine runs whatever they ask.
    local = Settings(home=tmp_path)
    check_budget(local, "stylize", 10 ** 6, "cpu")
    admit(SimpleNamespace(settings=local, manager=SimpleNamespace(device="cpu")), "local", "stylize", steps=100,
          width=1024, height=1024, images=8)


def test_a_running_job_is_stopped_at_the_budget_through_its_cancel_token(tmp_path) -> None:
    from ui.limits import time_budget

    settings = public_settings(tmp_path, job_budget_seconds=0.3)
    tokens = CancelTokens()

    def endless_job(token: CancelToken) -> None:  # a job that checks its token every step, as services do
        while True:
            token.raise_if_cancelled()
            time.sleep(0.01)

    token = tokens.start("session-1", "stylize")
    began = time.monotonic()
    with pytest.raises(gr.Error, match=r"time limit of 0.3 s per job \(PORTRAIT_STUDIO_JOB_BUDGET_SECONDS\)"):
        with time_budget(settings, tokens, "session-1", "stylize"):
            call_service(endless_job, token)
    assert 0.3 <= time.monotonic() - began < 5
    assert token.cancelled

    # A job within its budget is untouched, and its timer does not fire later.
    quick = tokens.start("session-1", "stylize")
    with time_budget(settings, tokens, "session-1", "stylize"):
        pass
    time.sleep(0.5)
    assert not quick.cancelled
    assert threading.active_count() < 50


def test_a_job_over_the_budget_is_refused_by_the_running_public_app(public_app) -> None:
    client = Client(public_app.url, verbose=False)
    big = {**stylize_args(seed=3), "w": 512, "h": 512, "step_count": 50, "count": 4}
    began = time.monotonic()
    with pytest.raises(Exception, match=r"the limit per job is 10 min \(PORTRAIT_STUDIO_JOB_BUDGET_SECONDS\)"):
        call(client, "/stylize", **big)
    assert time.monotonic() - began < 30  # refused up front, not after running
    # The public maxima are the sliders' own ranges there: Gradio refuses a value past them, naming it.
    with pytest.raises(Exception, match=r"Value 80 is greater than maximum value 50"):
        call(client, "/stylize", **{**stylize_args(seed=3), "step_count": 80})

