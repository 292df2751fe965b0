"""The app killed outright (SIGKILL, its training worker too) and started again loses nothing finished and
picks training back up; the visitor's cookie still names the same namespace afterwards."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from portrait_studio.services import owner_id
from tests.deploy.api import call


def _status(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # between two atomic writes
        return {}


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _kill_group(pid: int | None) -> None:
    if not pid or pid <= 1 or pid == os.getpgrp():
        return
    try:
        os.killpg(pid, signal.SIGKILL)  # the worker leads its own session (start_new_session=True)
    except (ProcessLookupError, PermissionError):
        pass


def test_kill_and_restart_keeps_likenesses_and_resumes_training(deploy_apps, lora_file, photos) -> None:
    app = deploy_apps.public
    cookie = {"ps_visitor": secrets.token_urlsafe(32)}
    visitor = Client(app.url, verbose=False, httpx_kwargs={"cookies": cookie})
    call(visitor, "/library_import", file_path=handle_file(str(lora_file)), name="Kept style")
    before = visitor.predict(api_name="/library_list")[1]["choices"]

    files = [handle_file(str(p)) for p in photos]
    training = {"files": files, "likeness_name": "Grace", "preset_name": "Quick", "step_count": 4}
    with pytest.raises(Exception, match="consent"):
        call(visitor, "/train", **training, agreed=False)
    call(visitor, "/train", **training, agreed=True)
    owner_jobs = app.home / "jobs" / owner_id(f"browser:{cookie['ps_visitor']}")
    (job_dir,) = [p for p in owner_jobs.iterdir() if not p.name.startswith(".")]  # the visitor's only job
    first = _wait(lambda: (s := _status(job_dir)).get("state") == "running" and s.get("pid") and s, 60,
                  "the training worker to start")

    app.process.kill()  # power cut: the app and its worker die without a word
    app.process.wait(timeout=20)
    _kill_group(first["pid"])
    deploy_apps.restart_public()
    try:
        resumed = _wait(lambda: (s := _status(job_dir)).get("state") == "running" and s.get("pid")
                        and s["pid"] != first["pid"] and s, 90, "the job to run again after the restart")
        assert "Kept style" in str(before)
        reloaded = Client(app.url, verbose=False, httpx_kwargs={"cookies": cookie})
        assert reloaded.predict(api_name="/library_list")[1]["choices"] == before  # nothing finished was lost
        status_text = reloaded.predict(api_name="/cancel_training")  # the same visitor finds the same job
        assert "Grace" in status_text
        final = _wait(lambda: (s := _status(job_dir)).get("state") in ("cancelled", "failed", "succeeded") and s,
                      60, "the resumed job to stop")
        assert final["state"] == "cancelled"
    finally:  # never leave a training worker behind, whatever failed above
        _kill_group(_status(job_dir).get("pid"))
    assert resumed["pid"] != first["pid"]
    assert not (job_dir / "photos").exists()  # photos of a cancelled job are deleted unless kept on purpose
