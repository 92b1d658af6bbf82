"""The status API handler on the local stack, driven with real-shaped HTTP API v2 events (IAM
authorizer context, from events/http-status-*.json): reads, pagination through the indexes,
authorisation failures, bad queries, and a manifest submitted through POST /jobs run to the end."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest

from clipedit.adapters.dynamo_jobs import DynamoBatchStore, DynamoJobStore
from clipedit.domain.job import Job, JobStatus
from tests import web

EVENTS = Path(__file__).resolve().parents[2] / "events"
# Jobs seeded in a time window no other test writes in, so listings see only this module's jobs.
FUTURE = "2099-0{month}-01T00:00:{second:02d}.000Z"


def fixture(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def call(stack):
    def invoke(event: dict) -> tuple[int, dict]:
        response = stack.runner.invoke(stack.status_function, event)
        return response["statusCode"], json.loads(response["body"])

    return invoke


def get_job_event(job_id: str) -> dict:
    event = fixture("http-status-get-job.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/jobs/{job_id}"
    event["pathParameters"] = {"job_id": job_id}
    return event


def list_event(**params: str) -> dict:
    event = fixture("http-status-list-jobs.json")
    event["rawQueryString"] = urlencode(params)
    event["queryStringParameters"] = dict(params) or None
    return event


@pytest.fixture(scope="module")
def seeded(stack):
    """Seven jobs in 2099 (FAILED x4, SUCCEEDED x2, PROCESSING x1) and a batch of five rows (2098)."""
    import boto3

    ddb = boto3.client("dynamodb", region_name=stack.info["region"], endpoint_url=stack.info["endpoint_url"])
    store = DynamoJobStore(stack.info["jobs_table"], ddb)
    run = uuid.uuid4().hex[:8]
    statuses = [JobStatus.FAILED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.PROCESSING,
                JobStatus.FAILED, JobStatus.SUCCEEDED, JobStatus.FAILED]
    jobs = []
    for second, status in enumerate(statuses):
        created = FUTURE.format(month=1, second=second)
        job = Job(job_id=f"j-{run}{second:024d}", status=status, input_bucket=stack.info["inbox_bucket"],
                  input_key=f"incoming/seed/{second}.mp4", created_at=created, updated_at=created,
                  callback_token_hash="0" * 64, error_code="KLING_1301" if status == JobStatus.FAILED else None)
        assert store.create(job)
        jobs.append(job)
    batch_id = f"b-{run}{'0' * 24}"
    DynamoBatchStore(stack.info["jobs_table"], ddb).create_batch({
        "batch_id": batch_id, "source_bucket": stack.info["inbox_bucket"], "source_key": "batches/seed.csv",
        "results_key": "batches/seed.results.csv", "total": 5, "chunks_total": 1, "chunks_done": [0],
        "created_at": FUTURE.format(month=2, second=0), "counts": {"SUCCEEDED": 3, "FAILED": 2, "RECEIVED": 0},
        "batch_status": "COMPLETED", "expanded": True})
    for row in range(1, 6):
        created = f"2098-02-01T00:00:{row:02d}.000Z"  # before the window the status listings look at
        assert store.create(Job(job_id=f"j-{run}b{row:023d}", batch_id=batch_id, batch_row=row,
                                status=JobStatus.SUCCEEDED if row % 2 else JobStatus.FAILED,
                                input_bucket=stack.info["inbox_bucket"], input_key="batches/seed.csv",
                                created_at=created, updated_at=created))
    return {"jobs": jobs, "batch_id": batch_id}


def pages(call, **params: str) -> list[list[str]]:
    """Follow ``next`` to the end; the job ids of each page."""
    collected, cursor = [], None
    for _ in range(20):
        query = dict(params, **({"next": cursor} if cursor else {}))
        status, body = call(list_event(**query))
        assert status == 200, body
        collected.append([j["job_id"] for j in body["jobs"]])
        cursor = body["next"]
        if cursor is None:
            return collected
    raise AssertionError("pagination did not end")


def test_get_a_job_without_its_secrets(call, seeded):
    job = seeded["jobs"][0]
    status, body = call(get_job_event(job.job_id))
    assert status == 200
    assert (body["job_id"], body["status"], body["error_code"]) == (job.job_id, "FAILED", "KLING_1301")
    assert "callback_token_hash" not in body


def test_an_unknown_job_is_404(call):
    status, body = call(get_job_event("j-" + "f" * 32))
    assert status == 404 and body["code"] == "NOT_FOUND"


def test_by_status_pages_are_newest_first_and_complete(call, seeded):
    failed = [j.job_id for j in reversed(seeded["jobs"]) if j.status == JobStatus.FAILED]
    result = pages(call, status="FAILED", since="2099-01-01", limit="3")
    assert result == [failed[:3], failed[3:]]


def test_without_a_status_every_status_index_is_merged_newest_first(call, seeded):
    everything = [j.job_id for j in reversed(seeded["jobs"])]
    result = pages(call, since="2099-01-01T00:00:00Z", limit="2")
    assert result == [everything[0:2], everything[2:4], everything[4:6], everything[6:7]]


def test_with_no_filter_at_all_the_newest_jobs_come_first(call, seeded):
    status, body = call(list_event(limit="3"))
    assert status == 200 and len(body["jobs"]) == 3 and body["next"]
    created = [j["created_at"] for j in body["jobs"]]
    assert created == sorted(created, reverse=True)
    # The seeded 2099 jobs are the newest in the table.
    assert [j["job_id"] for j in body["jobs"]] == [j.job_id for j in reversed(seeded["jobs"])][:3]


def test_a_batch_lists_its_rows_in_order_with_an_optional_status(call, seeded):
    batch_id = seeded["batch_id"]
    rows = pages(call, batch=batch_id, limit="2")
    assert [len(p) for p in rows] == [2, 2, 1]
    flat = [j for p in rows for j in p]
    assert flat == sorted(flat)
    failed = [j for p in pages(call, batch=batch_id, status="FAILED", limit="5") for j in p]
    assert len(failed) == 2


def test_get_a_batch(call, seeded):
    event = fixture("http-status-get-batch.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/batches/{seeded['batch_id']}"
    event["pathParameters"] = {"batch_id": seeded["batch_id"]}
    status, body = call(event)
    assert status == 200
    assert (body["total"], body["terminal"], body["done"]) == (5, 5, True)
    assert body["counts"] == {"SUCCEEDED": 3, "FAILED": 2}


@pytest.mark.parametrize("params, message", [
    ({"status": "DONE"}, "status must be one of"),
    ({"limit": "0"}, "limit must be from 1"),
    ({"since": "last tuesday"}, "look-back like 30m"),
    ({"next": "not-a-cursor"}, "not one this API returned"),
    ({"colour": "red"}, "unknown query parameter"),
])
def test_bad_queries_are_400_with_a_reason(call, params, message):
    status, body = call(list_event(**params))
    assert status == 400 and body["code"] == "INVALID_QUERY" and message in body["message"]


def test_a_cursor_only_continues_the_query_it_came_from(call, seeded):
    status, body = call(list_event(status="FAILED", since="2099-01-01", limit="1"))
    assert status == 200 and body["next"]
    status, other = call(list_event(status="SUCCEEDED", since="2099-01-01", limit="1", next=body["next"]))
    assert status == 400 and "other filters" in other["message"]


def test_a_request_without_an_iam_identity_is_refused(call):
    unsigned = get_job_event("j-" + "0" * 32)
    del unsigned["requestContext"]["authorizer"]
    status, body = call(unsigned)
    assert status == 403 and body["code"] == "FORBIDDEN"
    jwt_instead = copy.deepcopy(get_job_event("j-" + "0" * 32))
    jwt_instead["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": "x"}, "scopes": []}}
    assert call(jwt_instead)[0] == 403


def test_post_a_manifest_runs_its_job_to_the_end(stack, call, client, sample_clip):
    key = f"media/api/{uuid.uuid4().hex[:8]}.mp4"
    client.s3.upload_file(str(sample_clip), stack.info["inbox_bucket"], key)
    event = fixture("http-status-post-jobs.json")
    event["body"] = json.dumps({"video_url": key, "prompt": "Make @Video1 warmer. Keep the motion identical.",
                                "mode": "std"})
    event["requestContext"]["requestId"] = uuid.uuid4().hex
    status, body = call(event)
    assert status == 202, body
    (job_id,) = body["job_ids"]
    assert body["manifest"].startswith(f"s3://{stack.info['inbox_bucket']}/jobs/api/")
    job = client.wait_for_job(job_id, timeout=60)
    assert job["status"] == "SUCCEEDED" and job["video_ref"]["key"] == key
    status, view = call(get_job_event(job_id))
    assert status == 200 and view["output_key"] == job["output_key"]


@pytest.mark.parametrize("body, code", [
    ("{not json", "INVALID_JSON"),
    (json.dumps({"video_url": "media/x.mp4", "prompt": "p", "colour": "red"}), "UNKNOWN_FIELD"),
    (json.dumps({"video_url": "http://example.com/x.mp4", "prompt": "Edit @Video1"}), "INVALID_URL"),
])
def test_a_bad_manifest_is_400_and_nothing_is_stored(stack, call, client, body, code):
    event = fixture("http-status-post-jobs.json")
    event["body"] = body
    request_id = uuid.uuid4().hex
    event["requestContext"]["requestId"] = request_id
    status, answer = call(event)
    assert status == 400 and answer["code"] == code, answer
    listing = client.s3.list_objects_v2(Bucket=stack.info["inbox_bucket"], Prefix=f"jobs/api/{request_id}")
    assert listing.get("KeyCount", 0) == 0


# --- over HTTP: the local stand-in for API Gateway checks SigV4 before the function runs -----------


def signed_request(method: str, url: str, *, body: bytes = b"", key: str = "testing", secret: str = "testing",
                   region: str = "us-east-1"):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers={"content-type": "application/json"} if body else {})
    SigV4Auth(Credentials(key, secret), "execute-api", region).add_auth(request)
    return web.request(method, url, content=body, headers=dict(request.headers.items()), timeout=30)


def test_signed_requests_are_served_over_http(stack, seeded):
    base = stack.info["status_api_url"]
    job = seeded["jobs"][1]
    response = signed_request("GET", f"{base}/jobs/{job.job_id}")
    assert response.status_code == 200 and response.json()["status"] == "SUCCEEDED"
    response = signed_request("GET", f"{base}/jobs?status=FAILED&since=2099-01-01&limit=2")
    assert response.status_code == 200 and len(response.json()["jobs"]) == 2


@pytest.mark.parametrize("how", ["unsigned", "wrong secret", "other region", "tampered path"])
def test_unsigned_or_badly_signed_requests_never_reach_the_function(stack, seeded, how):
    base = stack.info["status_api_url"]
    job_id = seeded["jobs"][0].job_id
    before = stack.runner.invocations.get(stack.status_function, 0)
    if how == "unsigned":
        response = web.get(f"{base}/jobs/{job_id}", timeout=30)
    elif how == "wrong secret":
        response = signed_request("GET", f"{base}/jobs/{job_id}", secret="not-the-secret")
    elif how == "other region":
        response = signed_request("GET", f"{base}/jobs/{job_id}", region="eu-west-1")
    else:
        import httpx as client
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method="GET", url=f"{base}/jobs/{job_id}")
        SigV4Auth(Credentials("testing", "testing"), "execute-api", "us-east-1").add_auth(request)
        response = client.get(f"{base}/jobs/{seeded['jobs'][1].job_id}", headers=dict(request.headers.items()))
    assert response.status_code == 403 and response.json() == {"message": "Forbidden"}
    assert stack.runner.invocations.get(stack.status_function, 0) == before
