"""partial_batch_response: only the records whose handler raised come back to the queue."""

from __future__ import annotations

import json
from pathlib import Path

from clipedit.adapters.sqs_batch import partial_batch_response

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(*bodies: str, receive_count: str = "1") -> dict:
    return {"Records": [{"messageId": f"m-{i}", "receiptHandle": "h", "body": body, "eventSource": "aws:sqs",
                         "attributes": {"ApproximateReceiveCount": receive_count}} for i, body in enumerate(bodies)]}


def test_failed_records_are_reported_and_the_rest_acknowledged():
    seen = []

    def handle(message):
        seen.append((message.message_id, message.body, message.receive_count))
        if message.body == "bad":
            raise ValueError("cannot handle")

    response = partial_batch_response(_event("ok", "bad", "ok2", receive_count="3"), handle)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert seen == [("m-0", "ok", 3), ("m-1", "bad", 3), ("m-2", "ok2", 3)]


def test_an_empty_batch_and_an_all_good_batch_report_nothing():
    assert partial_batch_response({"Records": []}, lambda m: None) == {"batchItemFailures": []}
    assert partial_batch_response(_event("a", "b"), lambda m: None) == {"batchItemFailures": []}


def test_a_real_shaped_sqs_event_parses():
    fixtures = sorted(EVENTS.glob("sqs*.json"))
    for fixture in fixtures:
        event = json.loads(fixture.read_text())
        bodies = []
        partial_batch_response(event, lambda m: bodies.append(m))
        assert bodies and all(m.message_id and m.receive_count >= 1 for m in bodies), fixture
