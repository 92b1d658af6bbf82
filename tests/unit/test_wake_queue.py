"""Wake-ups of gate-waiting jobs go on the wake queue when the stack has one (its own event source,
so they overtake the upload backlog on the intake queue), else on the intake queue."""

from __future__ import annotations

import json

from clipedit.config import Settings
from clipedit.wiring import Container

INTAKE = "https://sqs.us-east-1.amazonaws.com/123456789012/intake"
WAKE = "https://sqs.us-east-1.amazonaws.com/123456789012/wake"


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 (boto3's names)
        self.sent += [(QueueUrl, json.loads(e["MessageBody"])) for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def _container(**settings: str) -> tuple[Container, RecordingSqs, list[str]]:
    sqs, built = RecordingSqs(), []

    def factory(service: str, **kwargs):
        built.append(service)
        assert service == "sqs", service
        return sqs

    base = {"JOBS_TABLE": "jobs", "INBOX_BUCKET": "inbox", "OUTPUTS_BUCKET": "out", "EVENT_BUS_NAME": "bus",
            "PROVIDER_SECRET_ID": "arn:secret", "INTAKE_QUEUE_URL": INTAKE}
    return Container(Settings.from_env({**base, **settings}), client_factory=factory), sqs, built


def test_wakes_go_on_the_wake_queue_when_there_is_one():
    container, sqs, _ = _container(WAKE_QUEUE_URL=WAKE)
    container.wake_queue.send_all([{"clipedit": "submit", "job_id": "j1", "wake": True}])
    container.queue.send_all([{"clipedit": "submit", "job_id": "j2"}])
    assert sqs.sent == [(WAKE, {"clipedit": "submit", "job_id": "j1", "wake": True}),
                        (INTAKE, {"clipedit": "submit", "job_id": "j2"})]


def test_without_a_wake_queue_wakes_use_the_intake_queue():
    container, sqs, _ = _container()
    container.wake_queue.send_all([{"clipedit": "submit", "job_id": "j1", "wake": True}])
    assert sqs.sent == [(INTAKE, {"clipedit": "submit", "job_id": "j1", "wake": True})]


def test_every_adapter_shares_one_client_per_service():
    container, _, built = _container(WAKE_QUEUE_URL=WAKE)
    assert container.wake_queue._client is container.queue._client
    assert built == ["sqs"]
