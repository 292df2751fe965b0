"""The device lease across real processes (on a CPU): training holds it for its life, requests and CLI
commands wait with a message naming the job and its ETA, a dead holder frees it, and a request that ends
while training waits frees the app's model cache first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from portrait_studio.likeness.status import JobStatus, write_status
from portrait_studio.models.lease import DeviceLease, Holder, describe, lease_enabled
from tests.conftest import REPO

HOLDER_SCRIPT = Path(__file__).with_name("lease_holder.py")


@pytest.mark.parametrize(("setting", "device", "zero_gpu", "expected"), [
    ("auto", "cuda", False, True),
    ("auto", "mps", False, True),
    ("auto", "cpu", False, False),  # CPU: a request beside training is slower, not fatal
    ("on", "cpu", False, True),
    ("off", "cuda", False, False),
    ("auto", "cuda", True, False),  # ZeroGPU schedules the GPU itself: no process-wide lock
    ("on", "cuda", True, False),
])
def test_when_the_lease_applies(setting: str, device: str, zero_gpu: bool, expected: bool) -> None:
    assert lease_enabled(setting, device, zero_gpu) is expected


class OtherProcess:
    """``lease_holder.py`` in its own process, holding the lease until :meth:`release`."""

    def __init__(self, home: Path, kind: str, task: str, job_dir: Path | str = "") -> None:
        self.release_file = home / f"release-{kind}-{time.monotonic_ns()}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, str(HOLDER_SCRIPT), str(home), kind, task, str(job_dir), str(self.release_file)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None or any(text in line for line in self.lines), self.lines
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from the other process: {self.lines}")
            time.sleep(0.02)

    def release(self) -> None:
        self.release_file.touch()
        assert self.process.wait(timeout=60) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=60)


def training_job(tmp_path: Path) -> Path:
    job_dir = tmp_path / "jobs" / "local" / "job-1"
    job_dir.mkdir(parents=True)
    write_status(job_dir, JobStatus("job-1", "local", "Ada", state="running", step=120, max_steps=400,
                                    eta_seconds=720.0))
    return job_dir


def test_a_request_waits_for_a_training_process_and_is_told_which_job_and_when(tmp_path: Path) -> None:
    trainer = OtherProcess(tmp_path, "training", "Ada", training_job(tmp_path))
    trainer.wait_for("held")
    lease = DeviceLease(tmp_path, poll_seconds=0.02)
    messages: list[str] = []
    ran: list[float] = []

    def request() -> None:
        with lease.hold(Holder("request", "stylize"), on_wait=messages.append):
            ran.append(time.monotonic())

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.5)
    assert ran == []  # still waiting: training has the device
    assert messages == ["Waiting for the GPU: it is training the likeness 'Ada' (step 120 of 400, about "
                        "12 min left). Your request starts when the training ends."]
    assert [h.kind for h in lease.waiting()] == ["request"]
    released_at = time.monotonic()
    trainer.release()
    thread.join(timeout=30)
    assert ran and ran[0] >= released_at
    assert lease.holder() is None and lease.waiting() == []


def test_training_waits_for_a_running_request_and_the_app_frees_its_cache_first(tmp_path: Path) -> None:
    lease = DeviceLease(tmp_path, poll_seconds=0.02)
    freed: list[str] = []
    lease.before_training_takes_over.append(lambda: freed.append("unload_all"))
    with lease.hold(Holder("request", "animate")):
        trainer = OtherProcess(tmp_path, "training", "Ada")
        trainer.wait_for("waiting: Waiting for the GPU: another animate request is using it.")
        deadline = time.monotonic() + 30
        while not lease.waiting() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [h.kind for h in lease.waiting()] == ["training"]
        assert "held" not in trainer.lines
    assert freed == ["unload_all"]  # before the lease went to training
    trainer.wait_for("held")
    trainer.release()
    with lease.hold(Holder("request", "stylize")):
        pass
    assert freed == ["unload_all"]  # nobody waited this time: the cache stays warm


def test_a_killed_holder_frees_the_device(tmp_path: Path) -> None:
    trainer = OtherProcess(tmp_path, "training", "Ada")
    trainer.wait_for("held")
    assert DeviceLease(tmp_path).holder() == Holder("training", "Ada", pid=trainer.process.pid)
    os.kill(trainer.process.pid, signal.SIGKILL)
    trainer.process.wait(timeout=30)
    with DeviceLease(tmp_path, poll_seconds=0.02).hold(Holder("cli", "stylize")):
        pass


def test_a_cli_command_that_uses_the_device_waits_for_training(tmp_path: Path, capsys) -> None:
    from argparse import Namespace

    from portrait_studio.cli import run_handler
    from portrait_studio.config import Settings

    settings = Settings(home=tmp_path, device="cpu", device_lease="on")
    trainer = OtherProcess(tmp_path, "training", "Ada", training_job(tmp_path))
    trainer.wait_for("held")
    ran: list[float] = []
    args = Namespace(handler=lambda a, s: ran.append(time.monotonic()) or 0, uses_device=True, device_task="stylize")
    thread = threading.Thread(target=lambda: ran.append(run_handler(args, settings)))
    thread.start()
    time.sleep(1.0)
    assert ran == []
    released_at = time.monotonic()
    trainer.release()
    thread.join(timeout=30)
    assert ran[0] >= released_at and ran[1] == 0
    assert "it is training the likeness 'Ada' (step 120 of 400" in capsys.readouterr().err
    # Commands that do not run models never wait.
    other = OtherProcess(tmp_path, "training", "Ada")
    other.wait_for("held")
    try:
        assert run_handler(Namespace(handler=lambda a, s: 0, uses_device=False), settings) == 0
    finally:
        other.release()


def test_doctor_smoke_waits_for_training_and_plain_doctor_does_not(tmp_path: Path, capsys, monkeypatch) -> None:
    from argparse import Namespace

    from portrait_studio.cli.doctor import run_doctor
    from portrait_studio.config import Settings

    settings = Settings(home=tmp_path, device="cpu", device_lease="on", offline=True)
    smoked: list[float] = []
    monkeypatch.setattr("portrait_studio.models.smoke.run_smoke", lambda s: smoked.append(time.monotonic()) or [])
    trainer = OtherProcess(tmp_path, "training", "Ada", training_job(tmp_path))
    trainer.wait_for("held")
    try:
        run_doctor(Namespace(smoke=False, json=True), settings)  # only looks: never waits
        thread = threading.Thread(target=run_doctor, args=(Namespace(smoke=True, json=True), settings))
        thread.start()
        time.sleep(1.0)
        assert smoked == []
        released_at = time.monotonic()
    finally:
        trainer.release()
    thread.join(timeout=30)
    assert len(smoked) == 1 and smoked[0] >= released_at
    assert "it is training the likeness 'Ada'" in capsys.readouterr().err


def test_descriptions_name_the_holder() -> None:
    assert describe(None) == "Waiting for the GPU: another job is using it."
    assert "command-line talk job (process 42)" in describe(Holder("cli", "talk", pid=42))
    assert describe(Holder("training", "Bo", job_dir="/nonexistent")).startswith(
        "Waiting for the GPU: it is training the likeness 'Bo'. ")
    # A public deployment's worker leaves the name out: other visitors read this.
    assert describe(Holder("training", "")).startswith("Waiting for the GPU: it is training a likeness. ")
