"""Reading every job of a key prefix from the local stack (a scan: tests only)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from clipedit.adapters.dynamo_jobs import python_value

_deserializer = TypeDeserializer()


def jobs_under(client: Any, prefix: str, only: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Every job whose input key starts with ``prefix``; ``only`` names the attributes to read (the
    job id and status always), which keeps a progress check from reading whole status histories."""
    names = {"#s": "status"}
    projection: dict[str, Any] = {}
    if only:
        wanted = ("job_id", "status", *only)
        names.update({f"#p{i}": attribute for i, attribute in enumerate(wanted)})
        projection["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(wanted)))
    jobs: dict[str, dict[str, Any]] = {}
    for page in client.dynamodb.get_paginator("scan").paginate(
        TableName=client.info["jobs_table"], FilterExpression="begins_with(input_key, :p) AND attribute_exists(#s)",
        ExpressionAttributeNames=names, ExpressionAttributeValues={":p": {"S": prefix}},
        ConsistentRead=True, **projection,
    ):
        for item in page["Items"]:
            job = {k: python_value(_deserializer.deserialize(v)) for k, v in item.items()}
            jobs[job["job_id"]] = job
    return jobs
