"""Submit function: SQS batch of S3 upload notifications -> one job (and one provider task) each.

Thin by design: parse the batch, call the submit use case per upload, report partial failures so
only the failed messages come back (and, after maxReceiveCount, land in the DLQ).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from clipedit.adapters.s3_notifications import uploads_from_sqs_body
from clipedit.config import Settings
from clipedit.wiring import Container

logger = Logger()
container = Container(Settings.from_env())  # validated at cold start


def record_handler(record: SQSRecord) -> None:
    for upload in uploads_from_sqs_body(record.body):
        outcome = container.submit_clip(upload)
        if outcome.job_id:
            logger.set_correlation_id(outcome.job_id)
        logger.info(
            "upload handled",
            extra={"job_id": outcome.job_id, "status": outcome.status, "key": upload.key, "detail": outcome.detail},
        )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A processor per invocation: it holds per-batch state, and the local stack runs several
    # invocations in one process at once (in Lambda the cost is nil).
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
