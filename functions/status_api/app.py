"""Status API function (HTTP API, IAM-authorised): read jobs and batches, submit a manifest.

  GET  /jobs/{job_id}                           one job
  GET  /jobs?status=&batch=&since=&limit=&next=&review_status= a page of jobs (by-status or by-batch index)
  POST /jobs                                    a manifest (object or list); 202 with the job ids
  GET  /batches/{batch_id}                      a batch's progress
  POST /jobs/{job_id}/review                    approve or reject a SUCCEEDED job's output

API Gateway checks the caller's SigV4 signature and IAM permission (execute-api:Invoke) before
this code runs; a request that arrives without an IAM identity means the route was deployed
without the authorizer, and is refused rather than served to anyone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools import Logger

from clipedit.adapters.http_routes import HttpRoutes, Response
from clipedit.adapters.metrics import PowertoolsMetrics
from clipedit.adapters.tracing import HandlerTracer
from clipedit.config import Settings
from clipedit.domain.errors import SpecError
from clipedit.domain.review import MAX_REVIEW_BODY_BYTES, InvalidReview, parse_review
from clipedit.usecases.queries import InvalidQuery, NotFound, public_job
from clipedit.usecases.review import NotReviewable
from clipedit.wiring import Container

logger = Logger()
tracer = HandlerTracer()  # X-Ray on in Lambda (active tracing in the template), loaded on first use
logging.getLogger("httpx").setLevel(logging.WARNING)
container = Container(Settings.from_env(), metrics=PowertoolsMetrics())  # validated at cold start
# Our own small router, not Powertools' event_handler: its import alone cost ~25 ms of a cold start.
app = HttpRoutes()
MAX_MANIFEST_BODY_BYTES = 1024 * 1024


def _error(status: int, code: str, message: str) -> Response:
    return Response(status_code=status, content_type="application/json",
                    body=json.dumps({"code": code, "message": message}))


def _caller() -> dict[str, Any] | None:
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    iam = authorizer.get("iam")
    return iam if isinstance(iam, dict) and iam.get("userArn") else None


@app.get("/jobs/<job_id>")
def get_job(job_id: str) -> dict[str, Any]:
    logger.set_correlation_id(job_id)
    return public_job(container.queries.job(job_id))


@app.get("/jobs")
def list_jobs() -> dict[str, Any]:
    params = app.current_event.query_string_parameters or {}
    unknown = sorted(set(params) - {"status", "batch", "since", "limit", "next", "review_status"})
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s): {', '.join(unknown)}; use status, batch, since, limit, next, "
                           "review_status")
    page = container.queries.list(status=params.get("status"), batch=params.get("batch"),
                                  since=params.get("since"), limit=params.get("limit"), cursor=params.get("next"),
                                  review_status=params.get("review_status"))
    return page.as_dict()


@app.post("/jobs")
def submit_manifest() -> Response:
    body = app.current_event.decoded_body or ""
    if len(body.encode()) > MAX_MANIFEST_BODY_BYTES:
        return _error(413, "MANIFEST_TOO_LARGE", f"a manifest is at most {MAX_MANIFEST_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise SpecError(f"the body is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                        code="INVALID_JSON") from None
    request_id = app.current_event.request_id
    submitted = container.submit_manifest(document, name=request_id)
    logger.info("manifest submitted", extra={**submitted.as_dict(), "caller": (_caller() or {}).get("userArn")})
    return Response(status_code=202, content_type="application/json", body=json.dumps(submitted.as_dict()))


@app.post("/jobs/<job_id>/review")
def review_job(job_id: str) -> dict[str, Any]:
    """``{"review_status": "approved"|"rejected", "review_note": "..."}``; the reviewer is the caller."""
    logger.set_correlation_id(job_id)
    body = app.current_event.decoded_body or ""
    if len(body.encode()) > MAX_REVIEW_BODY_BYTES:
        return _error(413, "REVIEW_TOO_LARGE", f"a review is at most {MAX_REVIEW_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise SpecError(f"the body is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                        code="INVALID_JSON") from None
    review = parse_review(document)
    job = container.review_job(job_id, review, reviewer=(_caller() or {}).get("userArn", "unknown"))
    logger.info("job reviewed", extra={"job_id": job_id, "review_status": job.review_status})
    return public_job(job)


@app.get("/batches/<batch_id>")
def get_batch(batch_id: str) -> dict[str, Any]:
    logger.set_correlation_id(batch_id)
    return container.queries.batch(batch_id)


@app.exception_handler(NotFound)
def not_found(error: NotFound) -> Response:
    return _error(404, error.code, error.message)


@app.not_found
def no_route(error: Exception) -> Response:
    return _error(404, "NO_SUCH_ROUTE", "routes: GET /jobs, GET /jobs/{id}, POST /jobs, "
                                          "POST /jobs/{id}/review, GET /batches/{id}")


@app.exception_handler(NotReviewable)
def not_reviewable(error: NotReviewable) -> Response:
    return _error(409, error.code, error.message)


@app.exception_handler([InvalidQuery, SpecError, InvalidReview])
def bad_request(error: InvalidQuery | SpecError | InvalidReview) -> Response:
    return _error(400, error.code, error.message)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler(capture_response=False)  # job records (prompts, keys) stay out of traces
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam", {}).get("userArn"):
        logger.error("request without an IAM identity: is the route's authorizer AWS_IAM?")
        return {"statusCode": 403, "headers": {"content-type": "application/json"},
                "body": json.dumps({"code": "FORBIDDEN", "message": "this API needs a SigV4-signed request "
                                    "from an IAM identity allowed to call it (execute-api:Invoke)"})}
    return app.resolve(event, context)
