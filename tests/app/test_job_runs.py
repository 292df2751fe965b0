"""ui.job_runs without a browser: a tracked handler is a job in its visitor's namespace (public mode keeps
visitors apart), its progress and cancel token are the job's, its result comes back to a fresh page."""

from __future__ import annotations

import threading

import gradio as gr
import pandas as pd
import pytest
from PIL import Image

from portrait_studio.config import settings_from_env
from portrait_studio.services import Services
from ui.common import CancelTokens, progress_fn, request_owner
from ui.job_runs import JobLine, decode_outputs, encode_outputs, tracked

ALICE, BOB = "a" * 43, "b" * 43


@pytest.fixture()
def services(tmp_path):
    settings = settings_from_env({}, home=tmp_path / "home", profile="tiny").replace(public=True)
    made = Services.create(settings, resume_jobs=False)
    yield made
    made.jobs.shutdown()


def visitor(cookie: str, session: str) -> gr.Request:
    return gr.Request(username=None, session_hash=session, cookies={"ps_visitor": cookie})


def test_a_tracked_handler_is_a_job_of_its_visitor_with_the_jobs_progress_and_cancel(services) -> None:
    tokens = CancelTokens()
    entered, release = threading.Event(), threading.Event()

    @tracked(services, "stylize")
    def handler(prompt, request: gr.Request = None, progress=None):
        token = tokens.start(request.session_hash, "stylize")  # as the tabs do
        progress_fn(lambda fraction, desc=None: None)(0.5, "image 1/2, step 3/4")
        entered.set()
        release.wait(10)
        sheet = Image.new("RGB", (8, 8), "red")
        return sheet, pd.DataFrame({"photo": ["a.jpg"]}), f"{prompt}: cancelled={token.cancelled}"

    results: list = []
    worker = threading.Thread(target=lambda: results.append(handler("hello", visitor(ALICE, "page-1"))))
    worker.start()
    assert entered.wait(10)
    alice = request_owner(services, visitor(ALICE, "page-2"))  # a reloaded page: another session, same cookie
    bob = request_owner(services, visitor(BOB, "page-3"))
    (job,) = services.visitor_jobs.list(alice)
    assert (job.state, job.fraction, job.message) == ("running", 0.5, "image 1/2, step 3/4")
    assert services.visitor_jobs.list(bob) == []  # another visitor sees nothing of it
    services.visitor_jobs.cancel(alice, job.job_id)  # from the reloaded page: the handler's own token trips
    release.set()
    worker.join(10)
    assert results[0][2] == "hello: cancelled=True"
    done = services.visitor_jobs.get(alice, job.job_id)
    assert done.state == "cancelled" and done.partial  # it returned what it had: kept

    # A fresh page of the same visitor gets the outputs back from the job's record.
    line = _line(services)
    state, status, _cancel, _timer, picture, table, note = line._tick({}, visitor(ALICE, "page-4"))
    assert state == {"job": job.job_id, "shown": True}
    assert "cancelled" in status and "kept" in status
    assert Image.open(picture).size == (8, 8) and list(table["photo"]) == ["a.jpg"] and note == results[0][2]
    assert line._tick({}, visitor(BOB, "page-5"))[1] == ""  # and Bob's page shows no job at all


def test_a_job_cancelled_while_it_waited_never_runs(services) -> None:
    ran: list[bool] = []

    @tracked(services, "talk")
    def handler(request: gr.Request = None):
        ran.append(True)

    owner = request_owner(services, visitor(ALICE, "page-1"))
    waiting = services.visitor_jobs.create(owner, "talk", session="page-1")  # the page's click, before the queue
    services.visitor_jobs.cancel(owner, waiting.job_id)
    with pytest.raises(gr.Error, match="before it started"):
        handler(visitor(ALICE, "page-1"))
    assert not ran


def test_a_failed_job_keeps_its_message(services) -> None:
    @tracked(services, "animate")
    def handler(request: gr.Request = None):
        raise gr.Error("The prompt is empty: describe the clip.")

    with pytest.raises(gr.Error):
        handler(visitor(ALICE, "page-1"))
    (job,) = services.visitor_jobs.list(request_owner(services, visitor(ALICE, "page-2")))
    assert (job.state, job.error) == ("failed", "The prompt is empty: describe the clip.")


def test_results_whose_files_were_cleaned_up_are_not_restored(tmp_path) -> None:
    encoded = encode_outputs((Image.new("RGB", (4, 4)), "notes"), lambda: tmp_path)
    assert decode_outputs(encoded)[1] == "notes"
    for path in tmp_path.iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError):
        decode_outputs(encoded)


def _line(services: Services) -> JobLine:
    with gr.Blocks():
        line = JobLine(services, "stylize")
        line.attach([gr.Image(), gr.Dataframe(), gr.Markdown()])
    return line
