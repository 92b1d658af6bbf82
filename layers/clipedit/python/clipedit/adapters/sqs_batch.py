"""SQS batches with partial failures, as Lambda's event source mapping expects them.

Each record is handled on its own; a record whose handler raises is reported in
``batchItemFailures`` (only it comes back after the visibility timeout, and after maxReceiveCount
it lands in the dead-letter queue) and the rest are acknowledged. This is what Powertools'
``process_partial_response`` with ``raise_on_entire_batch_failure=False`` does for SQS, written out
in a few lines because importing the Powertools batch utilities costs a cold start more than it
saves here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SqsMessage:
    message_id: str
    body: str
    receive_count: int  # ApproximateReceiveCount: 1 on the first delivery


def messages(event: Mapping[str, Any]) -> list[SqsMessage]:
    return [SqsMessage(message_id=record["messageId"], body=record["body"],
                       receive_count=int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 0))
            for record in event.get("Records") or []]


def partial_batch_response(event: Mapping[str, Any], handle: Callable[[SqsMessage], None]) -> dict[str, Any]:
    failures = []
    for message in messages(event):
        try:
            handle(message)
        except Exception as error:  # the handler logs what a user needs; this is for debugging
            log.debug("SQS message failed (%s); it returns to the queue", type(error).__name__,
                      extra={"message_id": message.message_id})
            failures.append({"itemIdentifier": message.message_id})
    return {"batchItemFailures": failures}
