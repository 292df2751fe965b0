"""Training jobs through real worker processes (face pipeline and registry swapped for stand-ins)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from portrait_studio.config import Settings
from portrait_studio.errors import InputError
from portrait_studio.likeness import checkpoints as ck
from portrait_studio.likeness.jobs import JobManager
from portrait_studio.likeness.status import read_status
from tests.likeness.helpers import photo_variants, tiny_config

FAKE_WORKER = [sys.executable, str(Path(__file__).with_name("fake_worker.py"))]


@pytest.fixture()
def settings(job_settings: Settings) -> Settings:
    return job_settings


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return photo_variants(tmp_path_factory.mktemp("photos"), count=5)


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_submit_checks_consent_owner_name_and_photos(settings: Settings, photos: list[Path], tmp_path: Path) -> None:
    jobs = JobManager(settings, worker_command=FAKE_WORKER, autostart=False)
    config = tiny_config()
    with pytest.raises(InputError, match="consent"):
        jobs.submit("alice", "Me", photos, config, consent=False)
    with pytest.raises(InputError, match="Invalid owner"):
        jobs.submit("../evil", "Me", photos, config, consent=True)
    with pytest.raises(InputError, match="name"):
        jobs.submit("alice", "  ", photos, config, consent=True)
    with pytest.raises(InputError, match="Training needs 5–20 photos of one person; 2 usable"):
        jobs.submit("alice", "Me", photos[:2], config, consent=True)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a photo"):
        jobs.submit("alice", "Me", [*photos[:4], tmp_path / "notes.txt"], config, consent=True)
    assert not (settings.jobs_dir / "alice").exists() or not any((settings.jobs_dir / "alice").iterdir())


def test_queue_is_fifo_and_a_queued_job_cancels_at_once(settings: Settings, photos: list[Path]) -> None:
    jobs = JobManager(settings, worker_command=FAKE_WORKER, autostart=False)
    first = jobs.submit("alice", "First", photos, tiny_config(), consent=True)
    second = jobs.submit("bob", "Second", photos, tiny_config(), consent=True)
    third = jobs.submit("alice", "Third", photos, tiny_config(), consent=True, keep_photos=True)
    assert [s.job_id for s in jobs.queue()] == [first, second, third]
    assert jobs.status("bob", second).queue_position == 2
    with pytest.raises(InputError):
        jobs.status("alice", second)  # one owner never sees another's job
    cancelled = jobs.cancel("bob", second)
    assert cancelled.state == "cancelled"
    assert not (settings.jobs_dir / "bob" / second / "photos").exists()
    assert [s.job_id for s in jobs.queue()] == [first, third]
    jobs.cancel("alice", third)
    assert (settings.jobs_dir / "alice" / third / "photos").is_dir()  # the user chose to keep them
    assert [s.name for s in jobs.list("alice")] == ["Third", "First"]


def test_kill_9_mid_run_then_app_restart_resumes_from_the_last_checkpoint(settings: Settings, photos) -> None:
    config = tiny_config(steps=24, checkpoint_every=4)
    submitter = JobManager(settings, worker_command=FAKE_WORKER, autostart=False)
    job_id = submitter.submit("alice", "Grace", photos, config, consent=True)
    job_dir = settings.jobs_dir / "alice" / job_id
    submitter.pump()  # the "app" starts the worker...
    _wait_for(lambda: read_status(job_dir).checkpoints or read_status(job_dir).done)
    assert not read_status(job_dir).done, (job_dir / "log.txt").read_text()[-2000:]
    pid = read_status(job_dir).pid
    os.kill(pid, signal.SIGKILL)  # ...and then the whole app dies with it
    submitter._running.process.wait()
    killed = read_status(job_dir)
    assert killed.state == "running" and killed.step < config.steps
    done_before = [c.step for c in ck.complete_checkpoints(job_dir / "checkpoints")]
    assert done_before and done_before[-1] < config.steps

    restarted = JobManager(settings, worker_command=FAKE_WORKER)
    try:
        assert restarted.resume_incomplete() == [job_id]
        final = restarted.wait("alice", job_id, timeout=240)
    finally:
        restarted.shutdown()
    assert final.state == "succeeded", (final.error, (job_dir / "log.txt").read_text()[-2000:])
    assert final.resumed_from == done_before[-1] and final.attempts == 2
    assert "resuming from checkpoint at step" in (job_dir / "log.txt").read_text()
    assert [p.step for p in final.checkpoints] == config.checkpoint_steps()
    record = json.loads((settings.registry_dir / "fake" / f"{final.slug}.json").read_text())
    assert record["steps"] == 24 and record["resumed_from"] == done_before[-1] and record["reference_exists"]
    assert not (job_dir / "photos").exists() and not (job_dir / "dataset").exists()  # privacy


def test_out_of_memory_and_disk_full_end_the_job_not_the_app(settings: Settings, photos: list[Path]) -> None:
    jobs = JobManager(settings, worker_command=["env", "FAKE_WORKER_FAULT=oom", *FAKE_WORKER], poll_interval=0.1)
    try:
        oom_job = jobs.submit("alice", "Big", photos, tiny_config(rank=128, alpha=64), consent=True)
        oom = jobs.wait("alice", oom_job, timeout=180)
        assert oom.state == "failed" and "ran out of" in oom.error and "rank 128 -> 64" in oom.error
        # The app goes on: the next job runs in the same manager.
        jobs.worker_command = ["env", "FAKE_WORKER_FAULT=enospc", *FAKE_WORKER]
        full_job = jobs.submit("alice", "Full", photos, tiny_config(), consent=True)
        full = jobs.wait("alice", full_job, timeout=180)
    finally:
        jobs.shutdown()
    assert full.state == "failed" and "disk is full" in full.error
    job_dir = settings.jobs_dir / "alice" / full_job
    assert [c.step for c in ck.complete_checkpoints(job_dir / "checkpoints")] == [3]
    assert not list((job_dir / "checkpoints").glob(".tmp-*"))
    assert not (settings.registry_dir / "fake").exists()  # nothing was registered


def test_a_worker_that_keeps_dying_is_retried_then_failed(settings: Settings, photos: list[Path]) -> None:
    dies = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    jobs = JobManager(settings, worker_command=dies, autostart=False)
    job_id = jobs.submit("alice", "Crashy", photos, tiny_config(), consent=True)
    status = jobs.wait("alice", job_id, timeout=60)
    assert status.state == "failed" and "stopped" in status.error
    assert not (settings.jobs_dir / "alice" / job_id / "photos").exists()


def test_cancel_stops_a_running_worker_with_sigterm(settings: Settings, photos: list[Path]) -> None:
    # A worker that marks itself running and then waits: cancel must end it and clean up.
    script = (
        "import sys, time; from pathlib import Path; from portrait_studio.likeness.status import update_status; "
        "update_status(Path(sys.argv[1]), message='working'); time.sleep(60)"
    )
    jobs = JobManager(settings, worker_command=[sys.executable, "-c", script], autostart=False)
    job_id = jobs.submit("alice", "Stop me", photos, tiny_config(), consent=True)
    jobs.pump()
    assert jobs.status("alice", job_id).state == "running"
    started = time.monotonic()
    jobs.cancel("alice", job_id)
    status = jobs.wait("alice", job_id, timeout=30)
    assert status.state == "cancelled" and time.monotonic() - started < 30
    assert not (settings.jobs_dir / "alice" / job_id / "photos").exists()


def test_the_worker_waits_for_a_running_request_then_holds_the_device_for_its_life(settings: Settings,
                                                                                   photos: list[Path]) -> None:
    from portrait_studio.models.lease import DeviceLease, Holder

    settings = settings.replace(device_lease="on")  # on a CPU the lease is off unless asked for
    lease = DeviceLease(settings.home, poll_seconds=0.01)
    jobs = JobManager(settings, worker_command=FAKE_WORKER, autostart=False)
    job_id = jobs.submit("alice", "Grace", photos, tiny_config(), consent=True)
    job_dir = settings.jobs_dir / "alice" / job_id
    holders: list[Holder | None] = []
    with lease.hold(Holder("request", "stylize")):
        jobs.pump()  # the worker process starts and finds the device taken
        _wait_for(lambda: "Waiting for the GPU" in read_status(job_dir).message or read_status(job_dir).done)
        status = read_status(job_dir)
        assert status.message == "Waiting for the GPU: another stylize request is using it.", status
        assert status.step == 0 and not (job_dir / "dataset").exists()  # nothing ran yet
    _wait_for(lambda: holders.append(lease.holder()) or read_status(job_dir).done)
    final = jobs.wait("alice", job_id, timeout=240)
    assert final.state == "succeeded", (final.error, (job_dir / "log.txt").read_text()[-2000:])
    training = [h for h in holders if h is not None]
    assert training and {(h.kind, h.task, h.job_dir) for h in training} == {("training", "Grace", str(job_dir))}
    assert lease.holder() is None
