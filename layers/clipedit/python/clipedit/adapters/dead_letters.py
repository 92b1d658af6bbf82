"""The intake dead-letter queue: why each message is there, and moving messages back.

SQS keeps no reason with a dead letter, so the submit function writes one (``deadletter#<message
id>`` in the jobs table) when a message fails its last allowed receive. Listing joins the two;
redriving sends each message back to the intake queue (every consumer path is idempotent) and
deletes it from the DLQ only once it is sent, so a crash mid-redrive duplicates, never loses.
"""

from __future__ import annotations

import json
from typing import Any

DEAD_LETTER_PREFIX = "deadletter#"
MAX_REASON_CHARS = 1000


def describe_body(body: str) -> str:
    """What the message was about, in a few words (an S3 key, an internal submit/expand)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "unparseable message"
    if isinstance(data, dict) and "clipedit" in data:
        return f"{data['clipedit']} {data.get('job_id') or data.get('batch_id') or ''}".strip()
    keys = [r.get("s3", {}).get("object", {}).get("key") for r in (data.get("Records") or [])
            if isinstance(r, dict)] if isinstance(data, dict) else []
    return "upload " + ", ".join(k for k in keys if k) if any(keys) else "other"


class DeadLetters:
    def __init__(self, *, sqs: Any, dynamodb: Any, dlq_url: str | None, queue_url: str | None, jobs_table: str) -> None:
        self._sqs = sqs
        self._dynamodb = dynamodb
        self._dlq_url = dlq_url
        self._queue_url = queue_url
        self._table = jobs_table

    def record_failure(self, message_id: str, body: str, error: BaseException, *, now: str) -> None:
        self._dynamodb.put_item(TableName=self._table, Item={
            "job_id": {"S": DEAD_LETTER_PREFIX + message_id},
            "reason": {"S": f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]},
            "error_code": {"S": str(getattr(error, "code", type(error).__name__))},
            "about": {"S": describe_body(body)},
            "failed_at": {"S": now},
        })

    def _reason(self, message_id: str) -> dict[str, str]:
        item = self._dynamodb.get_item(TableName=self._table,
                                       Key={"job_id": {"S": DEAD_LETTER_PREFIX + message_id}}).get("Item") or {}
        return {k: v["S"] for k, v in item.items() if "S" in v and k != "job_id"}

    def list(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Up to ``limit`` dead letters with their reason. Peeks (visibility 0): nothing is consumed."""
        if not self._dlq_url:
            raise ValueError("no dead-letter queue URL configured")
        seen: dict[str, dict[str, Any]] = {}
        quiet_rounds = 0
        while len(seen) < limit and quiet_rounds < 3:
            messages = self._sqs.receive_message(
                QueueUrl=self._dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0,
                AttributeNames=["All"]).get("Messages", [])
            new = [m for m in messages if m["MessageId"] not in seen]
            quiet_rounds = 0 if new else quiet_rounds + 1
            for message in new[: limit - len(seen)]:
                reason = self._reason(message["MessageId"])
                seen[message["MessageId"]] = {
                    "message_id": message["MessageId"],
                    "about": reason.get("about") or describe_body(message["Body"]),
                    "reason": reason.get("reason", "unknown (failed before the reason could be written)"),
                    "failed_at": reason.get("failed_at"),
                    "receive_count": int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
                }
        return list(seen.values())

    def redrive(self, *, limit: int | None = None) -> int:
        """Move dead letters back to the intake queue; returns how many were moved."""
        if not self._dlq_url or not self._queue_url:
            raise ValueError("both the dead-letter queue and the intake queue URLs are needed")
        moved = 0
        while limit is None or moved < limit:
            batch = 10 if limit is None else min(10, limit - moved)
            messages = self._sqs.receive_message(QueueUrl=self._dlq_url, MaxNumberOfMessages=batch,
                                                 WaitTimeSeconds=0, VisibilityTimeout=60).get("Messages", [])
            if not messages:
                break
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=[
                {"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)])
            sent = {int(entry["Id"]) for entry in response.get("Successful", [])}
            done = [m for i, m in enumerate(messages) if i in sent]
            if done:
                self._sqs.delete_message_batch(QueueUrl=self._dlq_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
                for message in done:
                    self._dynamodb.delete_item(TableName=self._table,
                                               Key={"job_id": {"S": DEAD_LETTER_PREFIX + message["MessageId"]}})
            moved += len(done)
            if len(done) < len(messages):
                raise RuntimeError(f"SQS refused {len(messages) - len(done)} message(s) while redriving")
        return moved
