"""The local stand-in for Lambda's SQS event source mapping.

Long-polls the queue, invokes the function with real-shaped SQS batch events, honours
``batchItemFailures`` (only successful messages are deleted; failed ones reappear after the
visibility timeout and, past maxReceiveCount, go to the DLQ), and caps concurrent invocations like
the mapping's MaximumConcurrency.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class QueueDispatcher:
    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        queue_arn: str,
        region: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int = 10,
        max_concurrency: int = 5,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._region = region
        self._invoke = invoke
        self._batch_size = batch_size
        self._slots = threading.Semaphore(max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="sqs-dispatch")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqs-dispatcher", daemon=True)
        self.batches = 0
        self.failed_records = 0
        # Receives started / finished, so a caller that changed the queue's attributes can wait
        # until no receive that began before the change is still long-polling (see below).
        self._polls = threading.Condition()
        self._polls_started = 0
        self._polls_finished = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wait_for_fresh_receive(self, timeout: float = 10.0) -> None:
        """Return once a receive that started after this call has finished. A long poll takes the
        queue's VisibilityTimeout when it starts, so after changing that attribute (a test
        shortening it) messages are only guaranteed the new value from then on."""
        with self._polls:
            target = self._polls_started + 1
            if not self._polls.wait_for(lambda: self._polls_finished >= target, timeout=timeout):
                raise TimeoutError(f"no receive on {self._queue_url} finished within {timeout} s")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._slots.acquire()
            with self._polls:
                self._polls_started += 1
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=self._batch_size,
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception:
                if self._stop.is_set():
                    self._slots.release()
                    return
                messages = []
            finally:
                with self._polls:
                    self._polls_finished += 1
                    self._polls.notify_all()
            if not messages:
                self._slots.release()
                continue
            self._pool.submit(self._run_batch, messages)

    def _run_batch(self, messages: list[dict[str, Any]]) -> None:
        try:
            event = {"Records": [self._record(m) for m in messages]}
            try:
                result = self._invoke(event) or {}
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            except Exception:
                failed = {m["MessageId"] for m in messages}  # the whole batch returns to the queue
            self.batches += 1
            self.failed_records += len(failed)
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
        finally:
            self._slots.release()

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": self._region,
        }
