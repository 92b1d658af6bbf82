"""Finalize function, two doors into one use case:

- the provider's callback through the HTTP API (``POST /callbacks/{provider}/{job_id}?token=...``):
  the token is checked, and for fal the webhook's Ed25519 signature over the raw body; the body is
  otherwise ignored (the task is re-fetched from the provider);
- the Step Functions poller (``{"job_id": ..., "source": "poller"[, "action": "expire"]}``), which
  loops until the answer says ``terminal``; between two checks it waits on a task token
  (``"action": "park"``) that a callback finding the task done resumes at once.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from aws_lambda_powertools import Logger

from clipedit.adapters.metrics import PowertoolsMetrics
from clipedit.adapters.tracing import HandlerTracer
from clipedit.config import Settings
from clipedit.domain.errors import WebhookRejected
from clipedit.usecases.finalize import CallbackRejected, JobNotFound
from clipedit.wiring import Container

logger = Logger()
tracer = HandlerTracer()  # X-Ray on in Lambda (active tracing in the template), loaded on first use
# httpx logs every request URL at INFO; provider result URLs are signed: never let them reach a log.
logging.getLogger("httpx").setLevel(logging.WARNING)
container = Container(Settings.from_env(), metrics=PowertoolsMetrics())  # validated at cold start
MAX_CALLBACK_BODY_BYTES = 64 * 1024  # a Kling callback is ~1 KB; anything huge is not one


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handle_callback(event: dict[str, Any]) -> dict[str, Any]:
    params = event.get("pathParameters") or {}
    job_id = params.get("job_id", "")
    provider = params.get("provider", "")
    token = (event.get("queryStringParameters") or {}).get("token")
    logger.set_correlation_id(job_id)
    if len(event.get("body") or "") > MAX_CALLBACK_BODY_BYTES:
        return _response(413, {"message": "callback body too large"})
    if provider not in container.finalize_job.provider_names:
        return _response(404, {"message": "unknown provider"})
    raw = event.get("body") or ""
    # Signatures cover the exact bytes sent: decode, never re-serialise.
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    try:
        outcome = container.finalize_job.on_callback(job_id, token, provider=provider,
                                                     headers=event.get("headers") or {}, body=body)
    except CallbackRejected:
        # Same answer for a wrong token and an unknown job: ids cannot be probed.
        logger.warning("callback rejected", extra={"job_id": job_id})
        return _response(401, {"message": "invalid callback token"})
    except WebhookRejected as rejected:
        # The token was right, so the caller knows the job: say exactly which check failed.
        logger.warning("webhook signature rejected", extra={"job_id": job_id, "provider": provider,
                                                            "reason": rejected.message})
        return _response(401, {"message": f"webhook rejected: {rejected.message}"})
    logger.info("callback handled", extra=outcome.as_dict())
    return _response(200, outcome.as_dict())


def handle_poll(event: dict[str, Any]) -> dict[str, Any]:
    job_id = str(event.get("job_id", ""))
    logger.set_correlation_id(job_id)
    try:
        if event.get("action") == "park":
            outcome = container.finalize_job.park(job_id, str(event.get("task_token", "")))
        elif event.get("action") == "expire":
            outcome = container.finalize_job.expire(job_id, "the poller could not finalize the job")
        else:
            outcome = container.finalize_job.on_poll(job_id)
    except JobNotFound:
        logger.error("poller asked about a job that does not exist", extra={"job_id": job_id})
        return {"job_id": job_id, "status": "NOT_FOUND", "terminal": True}
    logger.info("poll handled", extra=outcome.as_dict())
    return outcome.as_dict()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "requestContext" in event and "http" in event["requestContext"]:
        return handle_callback(event)
    return handle_poll(event)
