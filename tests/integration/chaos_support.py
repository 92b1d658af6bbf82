"""Reading every job of a key prefix from the local stack (a scan: tests only)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from clipedit.adapters.dynamo_jobs import python_value

_deserializer = TypeDeserializer()


def jobs_under(client: Any, prefix: str) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    for page in client.dynamodb.get_paginator("scan").paginate(
        TableName=client.info["jobs_table"], FilterExpression="begins_with(input_key, :p) AND attribute_exists(#s)",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":p": {"S": prefix}},
        ConsistentRead=True,
    ):
        for item in page["Items"]:
            job = {k: python_value(_deserializer.deserialize(v)) for k, v in item.items()}
            jobs[job["job_id"]] = job
    return jobs
