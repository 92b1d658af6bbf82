"""Provider per job, signed-callback checks and cancellation, on in-memory ports."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from clipedit.domain.errors import WebhookRejected
from clipedit.domain.job import JobStatus
from clipedit.ports import ProviderTask, TaskState
from clipedit.usecases.cancel import CancelJob, CancelRefused
from clipedit.usecases.common import StatusRecorder, iso
from clipedit.usecases.finalize import CallbackRejected, FinalizeJob, FinalizeSettings
from tests.fakes import FakeFetcher, FakeObjectStore, FakeProvider
from tests.unit.test_submit import World

RESULT = "https://v3.fal.media/files/out.mp4"


@dataclass
class FakeFal(FakeProvider):
    """fal as the use cases see it: inline elements, queue URLs, a cancel."""

    name: str = "fal"
    cancels: list[str] = field(default_factory=list)
    cancel_answer: str = "cancelled"

    def submit(self, request):
        task = super().submit(request)
        task = replace(task, endpoint="fal-ai/kling-video/o3/pro/video-to-video/edit",
                       urls={"status_url": f"https://q/{task.task_id}/status", "response_url": f"https://q/{task.task_id}",
                             "cancel_url": f"https://q/{task.task_id}/cancel"})
        self.tasks[task.task_id] = task
        return task

    def cancel(self, task_id, *, urls=None):
        self.cancels.append((urls or {}).get("cancel_url", task_id))
        return self.cancel_answer


class Verifier:
    def __init__(self):
        self.reject_with: str | None = None
        self.seen = []

    def verify(self, headers, body, *, task_id):
        self.seen.append((dict(headers), body, task_id))
        if self.reject_with:
            raise WebhookRejected(self.reject_with)


class Both(World):
    """Intake + submit with both providers registered, plus finalize and cancel."""

    def __init__(self):
        self.kling, self.fal = FakeProvider(), FakeFal()
        super().__init__(provider=self.kling)
        self.submit_job._providers["fal"] = self.fal
        recorder = StatusRecorder(events=self.events, now=lambda: iso(self.clock.now()))
        self.verifier = Verifier()
        self.fetcher = FakeFetcher({RESULT: b"video" * 100})
        self.finalize = FinalizeJob(
            jobs=self.jobs, storage=FakeObjectStore(), fetcher=self.fetcher, recorder=recorder, clock=self.clock,
            providers={"kling": self.kling, "fal": self.fal}, verifiers={"fal": self.verifier},
            settings=FinalizeSettings(outputs_bucket="out", incoming_prefix="incoming/", output_prefix="edited/"),
        )
        self.cancel = CancelJob(jobs=self.jobs, providers={"kling": self.kling, "fal": self.fal}, recorder=recorder,
                                clock=self.clock)

    def submitted(self, provider: str, key="incoming/clip.mp4"):
        (outcome,) = self.upload(key, metadata={"prompt": "p", "provider": provider})
        return self.jobs.get(outcome.job_id)


@pytest.fixture
def both():
    return Both()


def test_each_job_goes_to_the_provider_it_names(both):
    fal_job, kling_job = both.submitted("fal", "incoming/a.mp4"), both.submitted("kling", "incoming/b.mp4")
    assert (fal_job.provider, kling_job.provider) == ("fal", "kling")
    assert [r.external_id for r in both.fal.requests] == [fal_job.job_id]
    assert [r.external_id for r in both.kling.requests] == [kling_job.job_id]
    assert both.fal.requests[0].callback_url.startswith(f"https://api.example/callbacks/fal/{fal_job.job_id}?token=")
    # fal's request id and queue URLs are on the job once it is SUBMITTED (before the message is acked).
    assert fal_job.status == JobStatus.SUBMITTED and fal_job.provider_task_id
    assert fal_job.provider_urls["cancel_url"].endswith("/cancel") and fal_job.provider_endpoint


def test_an_unknown_provider_is_rejected_before_anything_is_spent(both):
    both.upload(metadata={"prompt": "p", "provider": "replicate"})
    (job,) = both.jobs.items.values()
    assert job.status == JobStatus.REJECTED and job.error_code == "INVALID_PROVIDER" and "kling, fal" in job.error_message
    assert not both.fal.requests and not both.kling.requests


def test_fal_takes_elements_inline_from_a_manifest(both):
    manifest = ('{"video_url": "media/a.mp4", "provider": "fal", "prompt": "@Element1 in @Video1",'
                ' "elements": [{"frontal_image_url": "refs/f.png", "reference_image_urls": ["refs/s.png"]}]}')
    both.storage.put("inbox", "jobs/m.json", manifest.encode(), {})
    both.upload("jobs/m.json")
    (request,) = both.fal.requests
    assert request.element_ids == () and len(request.elements) == 1
    assert request.elements[0].frontal_image_url.endswith("refs/f.png?ttl=900")  # presigned, like the clip


def test_a_fal_callback_needs_the_token_and_a_valid_signature(both):
    job = both.submitted("fal")
    token = both.fal.requests[0].callback_url.split("token=")[1]
    both.fal.set_state(job.provider_task_id, TaskState.RUNNING)
    both.verifier.reject_with = "the webhook timestamp is 900 s in the past"
    with pytest.raises(WebhookRejected, match="900 s"):
        both.finalize.on_callback(job.job_id, token, provider="fal", headers={"x": "y"}, body=b"{}")
    refused = both.jobs.get(job.job_id)
    assert refused.status == JobStatus.SUBMITTED and both.fal.get_calls == 0
    assert refused.callback_rejected.endswith("the webhook timestamp is 900 s in the past")  # where users look
    with pytest.raises(CallbackRejected):  # the Kling route for a fal job: the same 401 as a bad token
        both.finalize.on_callback(job.job_id, token, provider="kling", body=b"{}")
    both.verifier.reject_with = None
    assert both.finalize.on_callback(job.job_id, token, provider="fal", body=b"{}").status == "PROCESSING"
    assert both.verifier.seen[-1][2] == job.provider_task_id  # checked against the job's request id


def test_cancelling_a_fal_job_cancels_the_request_and_nothing_brings_it_back(both):
    job = both.submitted("fal")
    outcome = both.cancel(job.job_id, reason="wrong clip")
    assert (outcome.status, outcome.provider_cancelled) == ("CANCELLED", True)
    assert both.fal.cancels == [job.provider_urls["cancel_url"]]
    # fal finished anyway (a race) and its webhook and the poller arrive late.
    both.fal.set_state(job.provider_task_id, TaskState.SUCCEEDED, video_url=RESULT)
    assert both.finalize.on_poll(job.job_id).status == "CANCELLED"
    final = both.jobs.get(job.job_id)
    assert final.status == JobStatus.CANCELLED and final.error_code == "CANCELLED" and final.error_message == "wrong clip"
    assert both.fetcher.opened == []
    assert both.events.published[-1][1]["status"] == "CANCELLED"


def test_a_kling_job_with_the_provider_cannot_be_cancelled_and_says_so(both):
    job = both.submitted("kling")
    with pytest.raises(CancelRefused, match="not supported by provider kling") as refused:
        both.cancel(job.job_id)
    assert refused.value.code == "CANCEL_NOT_SUPPORTED"
    assert both.jobs.get(job.job_id).status == JobStatus.SUBMITTED


def test_a_job_the_provider_has_not_seen_is_cancelled_locally_whatever_the_provider(both):
    both.kling.submit_errors.append(__import__("clipedit.domain.errors", fromlist=["ProviderError"]).ProviderError(
        "Kling error 1303: busy", provider_code=1303, retryable=True, code="KLING_1303"))
    (outcome,) = both.upload(metadata={"prompt": "p"})  # busy: the job stays QUEUED, a retry is queued
    assert outcome.status == "WAITING"
    (job,) = [j for j in both.jobs.items.values() if j.status == JobStatus.QUEUED]
    outcome = both.cancel(job.job_id)
    assert (outcome.status, outcome.provider_cancelled) == ("CANCELLED", False)
    both.submit_job(job.job_id)  # the redelivered message finds it cancelled: no provider call
    assert len(both.kling.requests) == 1 and both.jobs.get(job.job_id).status == JobStatus.CANCELLED


def test_finished_or_completed_jobs_are_not_cancelled(both):
    job = both.submitted("fal")
    both.fal.cancel_answer = "completed"
    with pytest.raises(CancelRefused, match="already completed"):
        both.cancel(job.job_id)
    assert both.jobs.get(job.job_id).status == JobStatus.SUBMITTED
    both.fal.set_state(job.provider_task_id, TaskState.SUCCEEDED, video_url=RESULT)
    assert both.finalize.on_poll(job.job_id).status == "SUCCEEDED"
    with pytest.raises(CancelRefused, match="already SUCCEEDED"):
        both.cancel(job.job_id)
    with pytest.raises(CancelRefused) as missing:
        both.cancel("j-nope")
    assert missing.value.code == "JOB_NOT_FOUND"


def test_a_cancel_during_the_provider_call_cancels_the_orphaned_request(both):
    original_submit = both.fal.submit

    def submit_while_cancelled(request):
        task = original_submit(request)
        both.cancel(request.external_id)  # the user cancels while fal is answering
        return task

    both.fal.submit = submit_while_cancelled
    job = both.submitted("fal")
    assert job.status == JobStatus.CANCELLED
    assert both.fal.cancels == [next(iter(both.fal.tasks.values())).urls["cancel_url"]]


def test_the_stack_default_provider_applies_when_a_job_names_none(monkeypatch):
    from clipedit.config import Settings
    from clipedit.domain.spec import Provider
    from clipedit.wiring import Container

    env = {"JOBS_TABLE": "t", "INBOX_BUCKET": "in", "OUTPUTS_BUCKET": "out", "EVENT_BUS_NAME": "bus",
           "PROVIDER_SECRET_ID": "arn:secret", "DEFAULT_PROVIDER": "fal", "INTAKE_QUEUE_URL": "https://sqs/q"}
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # clients are built, never called
    container = Container(Settings.from_env(env))
    assert container.settings.default_provider == Provider.FAL
    assert container.intake._settings.defaults.provider == Provider.FAL  # specs resolve to it
    assert container.provider.name == "fal" and set(container.providers) == {"kling", "fal"}
    with pytest.raises(Exception, match="DEFAULT_PROVIDER must be one of kling, fal"):
        Settings.from_env(dict(env, DEFAULT_PROVIDER="replicate"))


def test_a_batch_row_can_name_its_provider(both):
    csv = "video_url,prompt,provider\nmedia/a.mp4,Warm @Video1,fal\nmedia/b.mp4,Cool @Video1,\n"
    both.storage.put("inbox", "batches/mixed.csv", csv.encode(), {})
    both.upload(key="batches/mixed.csv", body=csv.encode())
    both.drain()  # expand the chunk through the queue, then submit each row's job
    jobs = sorted(both.jobs.items.values(), key=lambda j: j.batch_row)
    assert [(j.provider, j.status) for j in jobs] == [("fal", JobStatus.SUBMITTED), ("kling", JobStatus.SUBMITTED)]
    assert len(both.fal.requests) == 1 and len(both.kling.requests) == 1
