"""One GPU queue under load and faults: at most one model job at a time, a bounded queue, failures that pass.

"At most one at a time" is observed from the app's own log: every model handler logs
``gpu-slot start task=... in_flight=N`` where N counts the handlers inside the GPU wrapper at that moment,
counted *before* the process-wide GPU lock (so N > 1 would mean Gradio's queue let two run together).
"""

from __future__ import annotations

import json
import re
import time

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.app.conftest import RunningApp
from tests.deploy.api import call, stylize_args, submit
from tests.deploy.conftest import PASSWORD, SLOW_JOB_SECONDS, USER

START_LINE = re.compile(r"gpu-slot start task=(\S+) in_flight=(\d+)")
JOB_TIMEOUT = 120


def gpu_starts(app: RunningApp, since: int = 0) -> list[tuple[str, int]]:
    return [(m[1], int(m[2])) for m in START_LINE.finditer(app.log()[since:])]


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def seed_of(gallery: list[dict]) -> int:
    with Image.open(gallery[0]["image"]) as image:
        return json.loads(image.text["parameters"])["seed"]


def test_twenty_concurrent_jobs_across_tabs_finish_one_gpu_job_at_a_time(public_app, photos) -> None:
    clients = [Client(public_app.url, verbose=False) for _ in range(5)]
    since = len(public_app.log())
    jobs = []  # (kind, expected, job)
    for index in range(10):  # model jobs from 5 visitors, interleaved with light ones
        client = clients[index % len(clients)]
        if index in (3, 7):
            jobs.append(("check_photos", len(photos),
                         submit(client, "/check_photos", files=[handle_file(str(p)) for p in photos])))
        else:
            jobs.append(("stylize", 100 + index, submit(client, "/stylize", **stylize_args(seed=100 + index))))
        jobs.append(("library", [], client.submit(api_name="/library_list")))
    assert len(jobs) == 20

    for kind, expected, job in jobs:
        result = job.result(timeout=JOB_TIMEOUT)
        if kind == "stylize":
            assert seed_of(result[0]) == expected
        elif kind == "check_photos":
            sheet, verdicts, notes = result
            assert len(verdicts["data"]) == expected and sheet
        else:
            gallery, choice = result
            assert gallery["value"] == [] and choice["choices"] == expected  # fresh visitors own nothing

    starts = gpu_starts(public_app, since)
    assert sorted(task for task, _ in starts) == ["check_photos"] * 2 + ["stylize"] * 8
    assert max(n for _, n in starts) == 1, starts


@pytest.fixture(scope="module")
def guarded_client(guarded_app) -> Client:
    return Client(guarded_app.url, verbose=False, auth=(USER, PASSWORD))


@pytest.fixture(scope="module")
def spent_fault(guarded_app, guarded_client: Client) -> tuple[str, list]:
    """Run the planned out-of-memory (the guarded app's first stylize job), then the next job."""
    with pytest.raises(Exception) as failure:
        call(guarded_client, "/stylize", **stylize_args(seed=7))
    after = call(guarded_client, "/stylize", **stylize_args(seed=8))
    return str(failure.value), after


def test_out_of_memory_gives_advice_and_the_next_job_runs(guarded_app, spent_fault) -> None:
    message, after = spent_fault
    assert "ran out of memory" in message and "Try again with a smaller size" in message
    assert "Traceback" not in message and "CUDA" not in message
    assert seed_of(after[0]) == 8
    log = guarded_app.log()
    assert "injecting a oom fault into stylize" in log
    assert "Something went wrong on our side" not in log


def test_a_full_queue_says_so_and_cancelling_a_waiting_job_frees_its_place(guarded_app, spent_fault, photos) -> None:
    clients = [Client(guarded_app.url, verbose=False, auth=(USER, PASSWORD)) for _ in range(3)]
    since = len(guarded_app.log())
    # The planned slow job: the first photo check holds the GPU for SLOW_JOB_SECONDS.
    slow = submit(clients[0], "/check_photos", files=[handle_file(str(p)) for p in photos])
    wait_for(lambda: gpu_starts(guarded_app, since), what="the slow job to hold the GPU")
    waiting = submit(clients[1], "/stylize", **stylize_args(seed=32))
    wait_for(lambda: waiting.status().code.name == "IN_QUEUE", what="the second job to wait in line")

    began = time.monotonic()
    with pytest.raises(Exception, match="Queue is full"):  # room for one waiting job: the next is turned away
        call(clients[2], "/stylize", **stylize_args(seed=33))
    assert waiting.cancel()
    wait_for(lambda: waiting.done(), what="the cancelled job to end")
    accepted = submit(clients[2], "/stylize", **stylize_args(seed=34))  # its place is free again
    assert time.monotonic() - began < SLOW_JOB_SECONDS, "the slow job ended before the queue was checked"

    assert seed_of(accepted.result(timeout=JOB_TIMEOUT)[0]) == 34
    assert len(slow.result(timeout=JOB_TIMEOUT)[1]["data"]) == len(photos)
    starts = gpu_starts(guarded_app, since)
    assert [task for task, _ in starts] == ["check_photos", "stylize"], starts  # the cancelled job never ran
    assert max(n for _, n in starts) == 1
