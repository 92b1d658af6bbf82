"""Reading the chaos run's jobs from the local stack (tests only)."""

from __future__ import annotations

from typing import Any, Iterable

from boto3.dynamodb.types import TypeDeserializer

from clipedit.adapters.dynamo_jobs import python_value

_deserializer = TypeDeserializer()
_BATCH_GET_LIMIT = 100  # keys per BatchGetItem


def _job(item: dict[str, Any]) -> dict[str, Any]:
    return {k: python_value(_deserializer.deserialize(v)) for k, v in item.items()}


def _projection(only: tuple[str, ...]) -> dict[str, Any]:
    """``only`` names the attributes to read (the job id and status always), which keeps a progress
    check from reading whole status histories."""
    if not only:
        return {}
    wanted = ("job_id", "status", *only)
    return {"ProjectionExpression": ", ".join(f"#p{i}" for i in range(len(wanted))),
            "ExpressionAttributeNames": {f"#p{i}": attribute for i, attribute in enumerate(wanted)}}


def jobs_under(client: Any, prefix: str, only: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Every job whose input key starts with ``prefix``: a scan of the whole table."""
    projection = _projection(only)
    names = {"#s": "status", **projection.pop("ExpressionAttributeNames", {})}
    jobs: dict[str, dict[str, Any]] = {}
    for page in client.dynamodb.get_paginator("scan").paginate(
        TableName=client.info["jobs_table"], FilterExpression="begins_with(input_key, :p) AND attribute_exists(#s)",
        ExpressionAttributeNames=names, ExpressionAttributeValues={":p": {"S": prefix}},
        ConsistentRead=True, **projection,
    ):
        for item in page["Items"]:
            job = _job(item)
            jobs[job["job_id"]] = job
    return jobs


def jobs_by_id(client: Any, job_ids: Iterable[str], only: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The named jobs (those that exist), read by key: unlike a scan, the cost follows the ids asked
    for, not everything the table holds."""
    table = client.info["jobs_table"]
    ids = sorted(set(job_ids))
    jobs: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _BATCH_GET_LIMIT):
        request = {table: {"Keys": [{"job_id": {"S": i}} for i in ids[start:start + _BATCH_GET_LIMIT]],
                           "ConsistentRead": True, **_projection(only)}}
        while request:
            answer = client.dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table, []):
                job = _job(item)
                jobs[job["job_id"]] = job
            request = answer.get("UnprocessedKeys") or {}
    return jobs
