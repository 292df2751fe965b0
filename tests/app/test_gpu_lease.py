"""A model handler of the app waits for the device lease while a training process holds it, and its
progress bar says which likeness is training and how long it has left."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gradio as gr
import pytest

from portrait_studio.models.lease import DeviceLease
from tests.foundation.test_device_lease import OtherProcess, training_job
from ui import gpu


class ProgressSpy(gr.Progress):
    def __init__(self) -> None:
        super().__init__()
        self.said: list[str] = []

    def __call__(self, progress, desc=None, *args, **kwargs):  # noqa: ANN001, ANN204 - gradio's signature
        self.said.append(desc)
        return progress


def test_a_gpu_handler_waits_for_training_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu.GPU_SLOT, "lease", DeviceLease(tmp_path, poll_seconds=0.02))
    ran: list[float] = []

    @gpu.on_gpu(seconds=60, task="stylize")
    def handler(prompt: str, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008 - a Gradio handler
        ran.append(time.monotonic())
        return prompt.upper()

    trainer = OtherProcess(tmp_path, "training", "Ada", training_job(tmp_path))
    trainer.wait_for("held")
    spy = ProgressSpy()
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(handler("a portrait", progress=spy)))
    thread.start()
    time.sleep(0.5)
    assert ran == []
    assert spy.said == ["Waiting for the GPU: it is training the likeness 'Ada' (step 120 of 400, about 12 min "
                        "left). Your request starts when the training ends."]
    released_at = time.monotonic()
    trainer.release()
    thread.join(timeout=30)
    assert results == ["A PORTRAIT"] and ran[0] >= released_at
