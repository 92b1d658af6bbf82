"""Prepare function: one SQS batch from the prepare queue, one job per message.

Thin by design: each message names a QUEUED job whose clip needs reframing, trimming or
normalizing (or a long clip to split into parts, or whose edited parts to stitch); the use case streams the clip, runs the plan with PyAV (the media layer, attached to
this function only) and wakes the job. A failure leaves the message to come back (after
maxReceiveCount it lands in the prepare dead-letter queue); the job itself waits, untouched.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools import Logger

from clipedit.adapters.metrics import PowertoolsMetrics
from clipedit.adapters.sqs_batch import SqsMessage, partial_batch_response
from clipedit.config import Settings
from clipedit.wiring import Container

logger = Logger()
logging.getLogger("httpx").setLevel(logging.WARNING)  # signed URLs must never reach a log
container = Container(Settings.from_env(), metrics=PowertoolsMetrics())  # validated at cold start


def record_handler(record: SqsMessage) -> None:
    body = json.loads(record.body)
    if body.get("clipedit") == "stitch":  # a long clip's parts are all edited
        outcome = container.stitch_long_clip(str(body["job_id"]))
    else:
        outcome = container.prepare_clip(str(body["job_id"]))
    logger.info(body.get("clipedit") or "prepare", extra={"job_id": outcome.job_id, "status": outcome.status, "detail": outcome.detail})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return partial_batch_response(event, record_handler)
