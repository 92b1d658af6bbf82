"""Submit function: one SQS batch from the intake queue.

Messages are S3 upload notifications (clips, manifests, batch files) or the queue's own messages
(a batch chunk to expand, a job to submit). Thin by design: parse, hand each to the dispatcher,
report partial failures so only the failed messages come back (and, after maxReceiveCount, land
in the DLQ). A job that must wait (gate full, provider busy or paused, elements being created)
gets a new delayed message from the dispatcher instead of sleeping; on a message's last allowed
receive, the reason it failed is written down for the DLQ listing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aws_lambda_powertools import Logger

from clipedit.adapters.s3_notifications import uploads_from_sqs_body
from clipedit.adapters.sqs_batch import SqsMessage, partial_batch_response
from clipedit.adapters.metrics import PowertoolsMetrics
from clipedit.adapters.tracing import HandlerTracer
from clipedit.config import Settings
from clipedit.domain.errors import RetryLater
from clipedit.usecases.common import MESSAGE_KIND, iso
from clipedit.wiring import Container

logger = Logger()
tracer = HandlerTracer()  # X-Ray on in Lambda (active tracing in the template), loaded on first use
# httpx logs every request URL at INFO; presigned and signed URLs must never reach a log.
logging.getLogger("httpx").setLevel(logging.WARNING)
container = Container(Settings.from_env(), metrics=PowertoolsMetrics())  # validated at cold start


def record_handler(record: SqsMessage) -> None:
    try:
        handle(record)
    except Exception as error:
        # SQS keeps no reason with a dead letter: on the last allowed receive, write down why.
        if record.receive_count >= container.settings.max_receive_count:
            container.dead_letters.record_failure(record.message_id, record.body, error,
                                                  now=iso(time.time()))
            logger.error("message goes to the dead-letter queue", extra={"reason": str(error)})
        raise


def handle(record: SqsMessage) -> None:
    try:
        body = json.loads(record.body)
        if isinstance(body, dict) and MESSAGE_KIND in body:
            outcomes = container.dispatcher.message(body)
        else:
            outcomes = [o for upload in uploads_from_sqs_body(record.body) for o in container.dispatcher.upload(upload)]
    except RetryLater as wait:
        # Planned waits never get here (the dispatcher re-enqueues them with a delay): this is a
        # transient failure, and the message comes back after its visibility timeout.
        logger.info("retry later", extra={"reason": wait.message})
        raise
    except json.JSONDecodeError:
        outcomes = list(uploads_from_sqs_body(record.body))  # raises MalformedNotification with the reason
    for outcome in outcomes:
        if getattr(outcome, "job_id", None):
            logger.set_correlation_id(outcome.job_id)
        logger.info("intake message handled", extra={"job_id": getattr(outcome, "job_id", None),
                                                    "status": getattr(outcome, "status", None),
                                                    "detail": getattr(outcome, "detail", "")})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return partial_batch_response(event, record_handler)
