"""The visitor job registry: namespaces, the life cycle, cancel (waiting and running), history and restarts."""

from __future__ import annotations

import json
import threading

import pytest

from portrait_studio.errors import CancelledError, InputError
from portrait_studio.visitor_jobs import VisitorJobs


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture()
def jobs(tmp_path) -> VisitorJobs:
    return VisitorJobs(tmp_path / "history", clock=Clock())


def test_a_job_runs_reports_progress_and_keeps_its_result(jobs) -> None:
    job = jobs.create("alice", "stylize", "Stylize", session="page-1")
    assert (job.state, job.started) == ("waiting", None)
    token = jobs.start("alice", job.job_id)
    assert not token.cancelled
    jobs.report("alice", job.job_id, 0.25, "image 1/4, step 3/10")
    running = jobs.get("alice", job.job_id)
    assert (running.state, running.fraction, running.message) == ("running", 0.25, "image 1/4, step 3/10")
    jobs.succeed("alice", job.job_id, {"outputs": ["a.png"]})
    done = jobs.get("alice", job.job_id)
    assert (done.state, done.fraction, done.result, done.partial) == ("succeeded", 1.0, {"outputs": ["a.png"]}, False)
    assert done.finished is not None and done.finished >= done.started


def test_owners_never_see_each_others_jobs(jobs) -> None:
    mine = jobs.create("alice", "talk")
    jobs.create("bob", "talk")
    assert [j.job_id for j in jobs.list("alice")] == [mine.job_id]
    with pytest.raises(InputError, match="No job"):
        jobs.get("bob", mine.job_id)
    with pytest.raises(InputError):
        jobs.cancel("bob", mine.job_id)
    assert jobs.get("alice", mine.job_id).state == "waiting"
    with pytest.raises(InputError, match="Invalid owner"):
        jobs.list("../alice")


def test_cancel_while_waiting_ends_the_job_and_its_late_start_is_refused(jobs) -> None:
    job = jobs.create("alice", "stylize", session="page-1")
    cancelled = jobs.cancel("alice", job.job_id)
    assert cancelled.state == "cancelled"
    # The queued call still reaches the handler later: it claims the job and is refused, exactly once.
    claimed = jobs.claim("alice", "stylize", "page-1")
    assert claimed is not None and claimed.job_id == job.job_id
    with pytest.raises(CancelledError, match="before it started"):
        jobs.start("alice", job.job_id)
    assert jobs.claim("alice", "stylize", "page-1") is None


def test_cancel_while_running_trips_the_token_the_work_checks(jobs) -> None:
    job = jobs.create("alice", "animate")
    token = jobs.start("alice", job.job_id)
    assert jobs.token("alice", job.job_id) is token
    stopped = threading.Event()

    def work() -> None:
        while not token.cancelled:
            jobs.report("alice", job.job_id, 0.5, "step 5/10")
            token_event.wait(0.01)
        stopped.set()

    token_event = threading.Event()
    worker = threading.Thread(target=work)
    worker.start()
    after = jobs.cancel("alice", job.job_id)
    worker.join(5)
    assert stopped.is_set() and after.state == "running" and "cancelling" in after.message
    jobs.end_cancelled("alice", job.job_id, {"outputs": ["first.png"]}, "Cancelled: kept 1 of 4 images.")
    final = jobs.get("alice", job.job_id)
    assert (final.state, final.partial, final.result) == ("cancelled", True, {"outputs": ["first.png"]})


def test_a_job_asked_to_stop_says_cancelling_once(jobs) -> None:
    job = jobs.create("alice", "stylize")
    jobs.start("alice", job.job_id)
    jobs.cancel("alice", job.job_id)
    jobs.report("alice", job.job_id, 0.4, "image 3/8")
    assert jobs.get("alice", job.job_id).message == "cancelling… (image 3/8)"
    jobs.report("alice", job.job_id, 0.4, "cancelled")  # the work's own last word is not repeated in brackets
    assert jobs.get("alice", job.job_id).message == "cancelling…"


def test_claim_takes_only_its_own_pages_waiting_job(jobs) -> None:
    other_page = jobs.create("alice", "stylize", session="page-2")
    own = jobs.create("alice", "stylize", session="page-1")
    jobs.create("alice", "animate", session="page-1")
    assert jobs.claim("alice", "stylize", "page-1").job_id == own.job_id
    jobs.start("alice", own.job_id)
    assert jobs.claim("alice", "stylize", "page-1") is None  # started jobs are never claimed twice
    assert jobs.claim("alice", "stylize", "page-2").job_id == other_page.job_id


def test_a_closed_page_ends_its_waiting_jobs_but_not_its_running_ones(jobs) -> None:
    waiting = jobs.create("alice", "stylize", session="page-1")
    running = jobs.create("alice", "talk", session="page-1")
    jobs.start("alice", running.job_id)
    assert jobs.abandon_session("page-1") == 1
    assert jobs.get("alice", waiting.job_id).state == "cancelled"
    assert jobs.get("alice", running.job_id).state == "running"


def test_history_survives_a_restart_and_interrupted_jobs_say_so(tmp_path) -> None:
    folder = tmp_path / "history"
    first = VisitorJobs(folder, clock=Clock())
    finished = first.create("alice", "stylize")
    first.start("alice", finished.job_id)
    first.succeed("alice", finished.job_id, {"outputs": [["x.png", "seed 1"]]})
    cut = first.create("alice", "animate")
    first.start("alice", cut.job_id)
    record = json.loads((folder / "alice" / f"{cut.job_id}.json").read_text())
    assert record["state"] == "running"

    second = VisitorJobs(folder)  # the app restarted
    assert second.get("alice", finished.job_id).result == {"outputs": [["x.png", "seed 1"]]}
    interrupted = second.get("alice", cut.job_id)
    assert interrupted.state == "interrupted" and "restarted" in interrupted.message
    assert [j.job_id for j in second.list("alice")] == [cut.job_id, finished.job_id]
    assert second.list("bob") == []


def test_each_owner_keeps_its_newest_jobs_only(tmp_path) -> None:
    jobs = VisitorJobs(tmp_path / "history", keep=3, clock=Clock())
    ids = []
    for _ in range(5):
        job = jobs.create("alice", "check_photos")
        jobs.start("alice", job.job_id)
        jobs.succeed("alice", job.job_id, None)
        ids.append(job.job_id)
    jobs.create("alice", "check_photos")  # the prune runs on create
    kept = [j.job_id for j in jobs.list("alice") if j.done]
    assert kept == ids[-2:][::-1]
    assert sorted(p.stem for p in (tmp_path / "history" / "alice").glob("*.json")) == sorted(
        [j.job_id for j in jobs.list("alice")])


def test_a_damaged_record_is_skipped(tmp_path) -> None:
    folder = tmp_path / "history" / "alice"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{not json")
    assert VisitorJobs(tmp_path / "history").list("alice") == []


def test_a_public_app_forgets_finished_jobs_with_their_outputs(tmp_path) -> None:
    clock = Clock()
    jobs = VisitorJobs(tmp_path / "history", max_age=3600, clock=clock)
    old = jobs.create("alice", "talk")
    jobs.start("alice", old.job_id)
    jobs.succeed("alice", old.job_id, {"outputs": ["talk.mp4"]})
    running = jobs.create("alice", "talk")
    jobs.start("alice", running.job_id)
    clock.now += 7200  # two hours later: the janitor has deleted the outputs the old record points to
    assert [j.job_id for j in jobs.list("alice")] == [running.job_id]  # a running job is never forgotten
    assert not (tmp_path / "history" / "alice" / f"{old.job_id}.json").exists()
