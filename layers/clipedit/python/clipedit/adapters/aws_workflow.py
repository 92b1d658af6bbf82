"""Step Functions poller start and EventBridge job events."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from clipedit.usecases.common import JOB_EVENT_SOURCE


class StepFunctionsWorkflow:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    def start_poller(self, job_id: str, *, poll_interval_seconds: int) -> bool:
        try:
            self._client.start_execution(
                stateMachineArn=self._arn,
                name=job_id,  # one execution per job: a second start is refused by name
                input=json.dumps({"job_id": job_id, "poll_interval_seconds": poll_interval_seconds}),
            )
        except self._client.exceptions.ExecutionAlreadyExists:
            return False
        return True


class StepFunctionsSignal:
    """Ends a poller's wait: SendTaskSuccess with the task token the poller parked on the job."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._factory = client_factory  # the client is made on first use: most callbacks never resume
        self._client: Any = None

    def resume(self, token: str) -> bool:
        if self._client is None:
            self._client = self._factory()
        errors = self._client.exceptions
        try:
            self._client.send_task_success(taskToken=token, output=json.dumps({"resumed": True}))
        except (errors.TaskTimedOut, errors.TaskDoesNotExist, errors.InvalidToken):
            return False  # that wait already ended (timed out into a poll, or resumed by another)
        return True


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        response = self._client.put_events(
            Entries=[
                {
                    "Source": JOB_EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self._bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            # An event is a notification, not the record of truth (the table is): report, don't fail.
            raise RuntimeError(f"EventBridge refused the job event: {response['Entries']}")
