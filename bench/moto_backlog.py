"""Per-call cost of moto's SQS and DynamoDB GSI calls against the size of the backlog (issue 16).

In-process moto backends, no server: a standard queue holding 1,000 then 10,000 messages (put in
directly, since unpatched SendMessage itself costs O(backlog)), then the mean time of 20
SendMessage, 5 ReceiveMessage of 10 (600 s visibility) and a DeleteMessage per received message;
a table with the jobs table's ``by-status`` index holding 1,000 then 10,000 items (one in 50
QUEUED), then the mean time of 5 GSI queries ``status = QUEUED`` with Limit 10, as the gate's
hand-over asks at each slot release.

``--patched`` installs the local stack's patches first (``local.runtime.patch_moto_sqs_backlog``,
``patch_moto_dynamodb_index_query``); without it, moto as released. Unpatched, the 10,000-message
case takes minutes. Prints one line per size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

ACCOUNT, REGION = "123456789012", "us-east-1"


def sqs_figures(backend: object, size: int) -> str:
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Message

    name = f"backlog-{size}"
    backend.create_queue(name, VisibilityTimeout=600)  # type: ignore[attr-defined]
    queue = backend.get_queue(name)  # type: ignore[attr-defined]
    body = json.dumps({"clipedit": "submit", "job_id": "j-" + "0" * 32})
    for i in range(size):
        message = Message(f"m{i}", body)
        message.sent_timestamp = int(unix_time_millis())
        queue._messages.append(message)
    started = time.perf_counter()
    for _ in range(20):
        backend.send_message(name, body)  # type: ignore[attr-defined]
    send = (time.perf_counter() - started) / 20
    started, received = time.perf_counter(), []
    for _ in range(5):
        received += backend.receive_message(name, 10, 0, 600)  # type: ignore[attr-defined]
    receive = (time.perf_counter() - started) / 5
    started = time.perf_counter()
    for message in received:
        backend.delete_message(name, message.receipt_handle)  # type: ignore[attr-defined]
    delete = (time.perf_counter() - started) / len(received)
    return (f"queue of {size}: SendMessage {send * 1000:.2f} ms, ReceiveMessage (10) {receive * 1000:.1f} ms, "
            f"DeleteMessage {delete * 1000:.2f} ms")


def gsi_figures(backend: object, size: int) -> str:
    from moto.dynamodb.models.dynamo_type import DynamoType

    name = f"backlog-{size}"
    backend.create_table(  # type: ignore[attr-defined]
        name, schema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        attr=[{"AttributeName": a, "AttributeType": "S"} for a in ("job_id", "status", "created_at")],
        global_indexes=[{"IndexName": "by-status", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [
            {"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "created_at", "KeyType": "RANGE"}]}],
        billing_mode="PAY_PER_REQUEST", throughput=None, indexes=None, streams=None, sse_specification=None,
        tags=None, deletion_protection_enabled=False, warm_throughput=None)
    table = backend.get_table(name)  # type: ignore[attr-defined]
    for i in range(size):
        table.put_item({"job_id": {"S": f"j{i:06d}"}, "status": {"S": "QUEUED" if i % 50 == 0 else "SUCCEEDED"},
                        "created_at": {"S": f"2026-12-06T{i:06d}"}, "prompt": {"S": "x" * 100}})
    started = time.perf_counter()
    for _ in range(5):
        items, _, _ = table.query(None, None, [], 10, None, True, None, "by-status",
                                  hash_key_conditions=[("status", DynamoType({"S": "QUEUED"}))])
    query = (time.perf_counter() - started) / 5
    assert [i.attrs["job_id"].value for i in items][:2] == ["j000000", "j000050"], items
    return f"table of {size}: GSI Query (Limit 10) {query * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patched", action="store_true", help="install the local stack's patches first")
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    if args.patched:
        from local.runtime import patch_moto_dynamodb_index_query, patch_moto_sqs_backlog

        patch_moto_sqs_backlog()
        patch_moto_dynamodb_index_query()
    from moto.dynamodb.models import dynamodb_backends
    from moto.sqs.models import sqs_backends

    label = "patched" if args.patched else "moto"
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{label}: {sqs_figures(sqs_backends[ACCOUNT][REGION], size)}", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{label}: {gsi_figures(dynamodb_backends[ACCOUNT][REGION], size)}", flush=True)


if __name__ == "__main__":
    main()
