"""Job store on DynamoDB: one item per job, every status change a conditional update."""

from __future__ import annotations

import time
import uuid
from dataclasses import fields as dataclass_fields
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Mapping

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from clipedit.domain.backpressure import BreakerState
from clipedit.domain.job import Job, JobStatus, sources_of

_JOB_FIELDS = {f.name for f in dataclass_fields(Job)} - {"extra"}
# A write whose answer is lost (a 500, a timeout) is sent again by botocore; if the first attempt
# landed, the retry's condition fails and the writer would take itself for the loser (its status
# event never published, its own lease left to expire). Each job write stamps a fresh token, and a
# refused write reads the item it was refused on (ALL_OLD): its own token there means it is in.
_WRITE_TOKEN = "write_token"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(job: Job) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name in _JOB_FIELDS:
        value = getattr(job, name)
        if value is None:
            continue
        if isinstance(value, JobStatus):
            value = value.value
        plain[name] = _dynamo_value(value)
    plain.update({k: _dynamo_value(v) for k, v in job.extra.items() if v is not None})
    return {k: _serializer.serialize(v) for k, v in plain.items()}


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))  # DynamoDB numbers are decimals; floats are refused by boto3
    if isinstance(value, list):
        return [_dynamo_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _dynamo_value(v) for k, v in value.items()}
    return value


def python_value(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [python_value(v) for v in value]
    if isinstance(value, dict):
        return {k: python_value(v) for k, v in value.items()}
    return value


def _new_token() -> str:
    return uuid.uuid4().hex


def _landed_before(error: ClientError, **expected: str) -> Mapping[str, Any] | None:
    """For a write refused by its condition (and asked for ALL_OLD): the item, if it holds what
    this write's own earlier attempt wrote, else None. Any other error is raised."""
    if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
        raise error
    item = error.response.get("Item") or {}
    return item if item and all(item.get(k, {}).get("S") == v for k, v in expected.items()) else None


def _from_item(item: Mapping[str, Any]) -> Job:
    plain = {k: python_value(_deserializer.deserialize(v)) for k, v in item.items() if k != _WRITE_TOKEN}
    known = {k: v for k, v in plain.items() if k in _JOB_FIELDS}
    extra = {k: v for k, v in plain.items() if k not in _JOB_FIELDS}
    known["status"] = JobStatus(known["status"])
    if "output_duration_seconds" in known and known["output_duration_seconds"] is not None:
        known["output_duration_seconds"] = float(known["output_duration_seconds"])
    return Job(**known, extra=extra)


class DynamoJobStore:
    # A hand-over refused because another ending job's hand-over is between its transfer and its
    # release (the holders are one over the limit for those few milliseconds) is tried again after
    # these pauses; without them, two jobs ending together left one waiting job to its delayed
    # message (1,000-upload load run: 84 of 892 hand-offs).
    HANDOVER_RETRY_PAUSES = (0.02, 0.05, 0.1)

    def __init__(self, table_name: str, client: Any, *, pause: Callable[[float], None] = time.sleep) -> None:
        self._table = table_name
        self._client = client
        self._pause = pause

    def create(self, job: Job) -> bool:
        token = _new_token()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**_to_item(job), _WRITE_TOKEN: {"S": token}},
                ConditionExpression="attribute_not_exists(job_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            return _landed_before(error, **{_WRITE_TOKEN: token}) is not None
        return True

    def get(self, job_id: str) -> Job | None:
        response = self._client.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return _from_item(item) if item else None

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        now: str,
        fields: Mapping[str, Any] | None = None,
        require_no_lease: bool = False,
        lease_owner: str | None = None,
    ) -> Job | None:
        token = _new_token()
        names: dict[str, str] = {"#status": "status", "#updated_at": "updated_at", "#history": "status_history",
                                 "#token": _WRITE_TOKEN}
        values: dict[str, Any] = {
            ":target": target.value,
            ":now": now,
            ":entry": [{"status": target.value, "at": now}],
            ":empty": [],
            ":token": token,
        }
        sets = [
            "#status = :target",
            "#updated_at = :now",
            "#history = list_append(if_not_exists(#history, :empty), :entry)",
            "#token = :token",
        ]
        removes: list[str] = []
        for index, (name, value) in enumerate((fields or {}).items()):
            names[f"#f{index}"] = name
            if value is None:
                removes.append(f"#f{index}")
            else:
                values[f":f{index}"] = _dynamo_value(value)
                sets.append(f"#f{index} = :f{index}")
        allowed = sorted(s.value for s in sources_of(target))
        placeholders = []
        for index, status in enumerate(allowed):
            values[f":from{index}"] = status
            placeholders.append(f":from{index}")
        condition = f"#status IN ({', '.join(placeholders)})"
        if require_no_lease:
            names["#lease_until"] = "finalize_lease_until"
            condition += " AND (attribute_not_exists(#lease_until) OR #lease_until < :now)"
        if lease_owner is not None:
            names["#lease_owner"] = "finalize_lease_owner"
            names["#lease_until"] = "finalize_lease_until"
            values[":owner"] = lease_owner
            condition += " AND #lease_owner = :owner"
            removes += ["#lease_owner", "#lease_until"]
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            landed = _landed_before(error, **{_WRITE_TOKEN: token})
            return _from_item(landed) if landed else None
        return _from_item(response["Attributes"])

    def set_fields(self, job_id: str, *, expected: JobStatus, fields: Mapping[str, Any]) -> bool:
        """A None value removes the field (a review without a note clears the previous note)."""
        names = {"#status": "status", **{f"#f{i}": name for i, name in enumerate(fields)}}
        values = {":expected": {"S": expected.value},
                  **{f":f{i}": _serializer.serialize(_dynamo_value(v))
                     for i, v in enumerate(fields.values()) if v is not None}}
        sets = [f"#f{i} = :f{i}" for i, v in enumerate(fields.values()) if v is not None]
        removes = [f"#f{i}" for i, v in enumerate(fields.values()) if v is None]
        expression = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression=expression.strip(),
                ConditionExpression="#status = :expected",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_until(self, job_id: str, name: str, *, expected: Iterable[JobStatus], now: str, until: str) -> bool:
        statuses = sorted(s.value for s in expected)
        values = {":now": {"S": now}, ":until": {"S": until},
                  **{f":s{i}": {"S": status} for i, status in enumerate(statuses)}}
        try:
            self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #field = :until",
                ConditionExpression=(f"#status IN ({', '.join(f':s{i}' for i in range(len(statuses)))}) "
                                     "AND (attribute_not_exists(#field) OR #field < :now)"),
                ExpressionAttributeNames={"#status": "status", "#field": name}, ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
    def mark_running(self, job_id: str, fields: Mapping[str, Any], *,
                     expect: Mapping[str, Any] | None = None) -> Job | None:
        token = _new_token()
        names: dict[str, str] = {"#status": "status", "#token": _WRITE_TOKEN}
        values: dict[str, Any] = {":s0": JobStatus.SUBMITTED.value, ":s1": JobStatus.PROCESSING.value, ":token": token}
        sets, removes = ["#token = :token"], []
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            if value is None:
                removes.append(f"#f{index}")
            else:
                values[f":f{index}"] = _dynamo_value(value)
                sets.append(f"#f{index} = :f{index}")
        condition = "#status IN (:s0, :s1)"
        for index, (name, value) in enumerate((expect or {}).items()):
            names[f"#e{index}"] = name
            values[f":e{index}"] = _dynamo_value(value)
            condition += f" AND #e{index} = :e{index}"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            response = self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job_id}}, UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            landed = _landed_before(error, **{_WRITE_TOKEN: token})
            return _from_item(landed) if landed else None
        return _from_item(response["Attributes"])

    def acquire_lease(self, job_id: str, *, owner: str, now: str, until: str) -> bool:
        allowed = [JobStatus.SUBMITTED.value, JobStatus.PROCESSING.value]
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #owner = :owner, #until = :until",
                ConditionExpression=(
                    "#status IN (:s0, :s1) AND (attribute_not_exists(#until) OR #until < :now)"
                ),
                ExpressionAttributeNames={
                    "#owner": "finalize_lease_owner",
                    "#until": "finalize_lease_until",
                    "#status": "status",
                },
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"S": until},
                    ":now": {"S": now},
                    ":s0": {"S": allowed[0]},
                    ":s1": {"S": allowed[1]},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            return _landed_before(error, finalize_lease_owner=owner, finalize_lease_until=until) is not None
        return True

    def release_lease(self, job_id: str, *, owner: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="REMOVE #owner, #until",
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "finalize_lease_owner", "#until": "finalize_lease_until"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def claim_submission(self, job_id: str, *, owner: str, now: str, until: str) -> bool:
        """Only one submitter at a time talks to the provider for a job (a wake-up and the job's own
        retry may arrive together); the SUBMITTED transition clears the claim."""
        try:
            self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #owner = :owner, #until = :until",
                ConditionExpression="#status = :queued AND (attribute_not_exists(#until) OR #until < :now)",
                ExpressionAttributeNames={"#owner": "submit_claim_owner", "#until": "submit_claim_until",
                                          "#status": "status"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":until": {"S": until}, ":now": {"S": now},
                                           ":queued": {"S": JobStatus.QUEUED.value}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            return _landed_before(error, submit_claim_owner=owner, submit_claim_until=until) is not None
        return True

    def release_submission(self, job_id: str, *, owner: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table, Key={"job_id": {"S": job_id}}, UpdateExpression="REMOVE #owner, #until",
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "submit_claim_owner", "#until": "submit_claim_until"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def list_by_status(self, status: JobStatus, *, limit: int, since: str | None = None) -> list[Job]:
        condition = "#status = :status"
        values: dict[str, Any] = {":status": {"S": status.value}}
        if since:
            condition += " AND created_at >= :since"
            values[":since"] = {"S": since}
        jobs: list[Job] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table, IndexName=BY_STATUS_INDEX, KeyConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"}, ExpressionAttributeValues=values,
            ScanIndexForward=True, PaginationConfig={"PageSize": min(limit, 1000)},
        ):
            for item in page["Items"]:
                jobs.append(_from_item(item))
                if len(jobs) >= limit:
                    return jobs
        return jobs


BY_STATUS_INDEX = "by-status"
GUARD_PREFIX = "guard#"


class DynamoProviderGuard:
    """The concurrency gate and the circuit breaker of each provider, in one item of the jobs table
    (``guard#<provider>``). The gate is a string set of the job ids holding a slot: acquiring is
    idempotent per job, releasing twice is harmless, and a leaked holder is visible by name (the
    reconcile command frees slots of finished jobs)."""

    # A hand-over refused because another ending job's hand-over is between its transfer and its
    # release (the holders are one over the limit for those few milliseconds) is tried again after
    # these pauses; without them, two jobs ending together left one waiting job to its delayed
    # message (1,000-upload load run: 84 of 892 hand-offs).
    HANDOVER_RETRY_PAUSES = (0.02, 0.05, 0.1)

    def __init__(self, table_name: str, client: Any, *, pause: Callable[[float], None] = time.sleep) -> None:
        self._table = table_name
        self._client = client
        self._pause = pause

    def _key(self, provider: str) -> dict[str, Any]:
        return {"job_id": {"S": GUARD_PREFIX + provider}}

    def _update(self, provider: str, expression: str, *, condition: str | None = None,
                names: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                returns: str = "NONE") -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"TableName": self._table, "Key": self._key(provider),
                                  "UpdateExpression": expression, "ReturnValues": returns}
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            return self._client.update_item(**kwargs).get("Attributes") or {}
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise

    def acquire_slot(self, provider: str, job_id: str, *, limit: int) -> bool:
        result = self._update(
            provider, "ADD #holders :job",
            condition="attribute_not_exists(#holders) OR size(#holders) < :limit OR contains(#holders, :id)",
            names={"#holders": "slot_holders"},
            values={":job": {"SS": [job_id]}, ":id": {"S": job_id}, ":limit": {"N": str(limit)}},
        )
        return result is not None

    def transfer_slot(self, provider: str, from_job_id: str, to_job_id: str, *, limit: int) -> bool:
        for pause in (*self.HANDOVER_RETRY_PAUSES, None):
            holders = self._transfer_once(provider, from_job_id, to_job_id, limit=limit)
            if holders is None:
                return True
            if from_job_id not in holders or pause is None:
                return False  # its slot is gone (a duplicate end), or the gate stays over the limit
            self._pause(pause)
        return False

    def _transfer_once(self, provider: str, from_job_id: str, to_job_id: str, *, limit: int) -> set[str] | None:
        """One write: the heir is added only while the ending job still holds its slot (so the
        holders are at most limit + 1 until that job's release, and nobody else gets in between).
        None when it was added, else the holders that refused it."""
        try:
            self._client.update_item(
                TableName=self._table, Key=self._key(provider), UpdateExpression="ADD #holders :to",
                ConditionExpression="contains(#holders, :from) AND size(#holders) <= :limit",
                ExpressionAttributeNames={"#holders": "slot_holders"},
                ExpressionAttributeValues={":to": {"SS": [to_job_id]}, ":from": {"S": from_job_id},
                                           ":limit": {"N": str(limit)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = error.response.get("Item") or {}
            return set(item.get("slot_holders", {}).get("SS", []))

    def release_slot(self, provider: str, job_id: str) -> bool:
        result = self._update(
            provider, "DELETE #holders :job", condition="contains(#holders, :id)",
            names={"#holders": "slot_holders"}, values={":job": {"SS": [job_id]}, ":id": {"S": job_id}},
        )
        return result is not None

    def _item(self, provider: str) -> dict[str, Any]:
        item = self._client.get_item(TableName=self._table, Key=self._key(provider), ConsistentRead=True).get("Item")
        return _plain_item(item) if item else {}

    def slot_holders(self, provider: str) -> set[str]:
        return set(self._item(provider).get("slot_holders") or [])

    @staticmethod
    def _state(plain: Mapping[str, Any]) -> BreakerState:
        return BreakerState(failures=int(plain.get("breaker_failures") or 0),
                            open_until=float(plain.get("breaker_open_until") or 0.0),
                            reason=plain.get("breaker_reason"), opened=int(plain.get("breaker_opened") or 0))

    def breaker(self, provider: str) -> BreakerState:
        return self._state(self._item(provider))

    def count_failure(self, provider: str) -> BreakerState:
        attributes = self._update(provider, "ADD #failures :one", names={"#failures": "breaker_failures"},
                                  values={":one": {"N": "1"}}, returns="ALL_NEW")
        return self._state(_plain_item(attributes or {}))

    def open_breaker(self, provider: str, *, now: float, until: float, reason: str) -> bool:
        result = self._update(
            provider, "SET #until = :until, #reason = :reason ADD #opened :one",
            condition="attribute_not_exists(#until) OR #until < :now",
            names={"#until": "breaker_open_until", "#reason": "breaker_reason", "#opened": "breaker_opened"},
            values={":until": {"N": repr(until)}, ":reason": {"S": reason}, ":now": {"N": repr(now)},
                    ":one": {"N": "1"}},
        )
        return result is not None

    def reset_breaker(self, provider: str) -> None:
        self._update(
            provider, "SET #failures = :zero, #opened = :zero, #until = :zero REMOVE #reason",
            condition="#failures > :zero OR #opened > :zero",
            names={"#failures": "breaker_failures", "#opened": "breaker_opened", "#until": "breaker_open_until",
                   "#reason": "breaker_reason"},
            values={":zero": {"N": "0"}},
        )


BATCH_PREFIX = "batch#"
ELEMENT_PREFIX = "element#"
BY_BATCH_INDEX = "by-batch"


class DynamoBatchStore:
    """Batch records live in the jobs table under ``batch#<id>`` (single-table design: no extra
    table to deploy or pay for). Their status attribute is ``batch_status`` so they never show up
    in the by-status index of jobs."""

    # A hand-over refused because another ending job's hand-over is between its transfer and its
    # release (the holders are one over the limit for those few milliseconds) is tried again after
    # these pauses; without them, two jobs ending together left one waiting job to its delayed
    # message (1,000-upload load run: 84 of 892 hand-offs).
    HANDOVER_RETRY_PAUSES = (0.02, 0.05, 0.1)

    def __init__(self, table_name: str, client: Any, *, pause: Callable[[float], None] = time.sleep) -> None:
        self._table = table_name
        self._client = client
        self._pause = pause

    def _key(self, batch_id: str) -> dict[str, Any]:
        return {"job_id": {"S": BATCH_PREFIX + batch_id}}

    def create_batch(self, batch: Mapping[str, Any]) -> bool:
        item = {k: _serializer.serialize(_dynamo_value(v)) for k, v in batch.items() if v is not None}
        item["job_id"] = {"S": BATCH_PREFIX + batch["batch_id"]}
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(job_id)")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._table, Key=self._key(batch_id), ConsistentRead=True).get("Item")
        return _plain_item(item) if item else None

    def count_transition(self, batch_id: str, previous: str | None, current: str, *, now: str) -> dict[str, Any]:
        names = {"#counts": "counts", "#cur": current, "#updated": "updated_at"}
        values: dict[str, Any] = {":one": {"N": "1"}, ":now": {"S": now}}
        expression = "ADD #counts.#cur :one"
        if previous:
            names["#prev"] = previous
            values[":minus"] = {"N": "-1"}
            expression += ", #counts.#prev :minus"
        # A counter is not conditional, so a retry of an applied ADD (its answer lost) would count
        # the change twice, and a batch could complete before its last row. As a one-item
        # transaction the SDK's ClientRequestToken makes the retry a no-op (DynamoDB keeps tokens
        # 10 minutes); the transaction returns no item, so the record is read after it.
        self._client.transact_write_items(TransactItems=[{"Update": {
            "TableName": self._table, "Key": self._key(batch_id), "UpdateExpression": expression + " SET #updated = :now",
            "ConditionExpression": "attribute_exists(job_id)", "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }}])
        item = self._client.get_item(TableName=self._table, Key=self._key(batch_id), ConsistentRead=True)["Item"]
        return _plain_item(item)

    def mark_chunk_expanded(self, batch_id: str, chunk: int, *, now: str) -> dict[str, Any] | None:
        try:
            response = self._client.update_item(
                TableName=self._table, Key=self._key(batch_id),
                UpdateExpression="ADD #done :chunk SET #updated = :now",
                ConditionExpression="attribute_exists(job_id)",
                ExpressionAttributeNames={"#done": "chunks_done", "#updated": "updated_at"},
                ExpressionAttributeValues={":chunk": {"NS": [str(chunk)]}, ":now": {"S": now}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        batch = _plain_item(response["Attributes"])
        if len(batch.get("chunks_done", [])) >= int(batch.get("chunks_total", 0)) and not batch.get("expanded"):
            self._client.update_item(
                TableName=self._table, Key=self._key(batch_id), UpdateExpression="SET #e = :t, #s = :running",
                ExpressionAttributeNames={"#e": "expanded", "#s": "batch_status"},
                ExpressionAttributeValues={":t": {"BOOL": True}, ":running": {"S": "RUNNING"}},
            )
            batch["expanded"] = True
        return batch

    def claim_completion(self, batch_id: str, *, now: str) -> bool:
        token = _new_token()  # a retried claim that had landed is still this caller's (its event is sent)
        try:
            self._client.update_item(
                TableName=self._table, Key=self._key(batch_id),
                UpdateExpression="SET #s = :done, #completed = :now, #token = :token",
                ConditionExpression="attribute_not_exists(#completed)",
                ExpressionAttributeNames={"#s": "batch_status", "#completed": "completed_at", "#token": _WRITE_TOKEN},
                ExpressionAttributeValues={":done": {"S": "COMPLETED"}, ":now": {"S": now}, ":token": {"S": token}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            return _landed_before(error, **{_WRITE_TOKEN: token}) is not None
        return True

    def batch_jobs(self, batch_id: str) -> Iterator[Job]:
        """The index is eventually consistent: the rows that ended just before the batch completed
        may still show their previous status there, so a row it shows as not terminal is read
        again from the table (consistently) before the results file reports it."""
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table, IndexName=BY_BATCH_INDEX, KeyConditionExpression="batch_id = :b",
            ExpressionAttributeValues={":b": {"S": batch_id}},
        ):
            for item in page["Items"]:
                job = _from_item(item)
                if not job.terminal:
                    fresh = self._client.get_item(TableName=self._table, Key={"job_id": {"S": job.job_id}},
                                                  ConsistentRead=True).get("Item")
                    job = _from_item(fresh) if fresh else job
                yield job


BY_STATUS_INDEX = "by-status"


class DynamoJobIndex:
    """Pages of jobs from the two indexes (Query only: a scan of a busy table costs per item read)."""

    # A hand-over refused because another ending job's hand-over is between its transfer and its
    # release (the holders are one over the limit for those few milliseconds) is tried again after
    # these pauses; without them, two jobs ending together left one waiting job to its delayed
    # message (1,000-upload load run: 84 of 892 hand-offs).
    HANDOVER_RETRY_PAUSES = (0.02, 0.05, 0.1)

    def __init__(self, table_name: str, client: Any, *, pause: Callable[[float], None] = time.sleep) -> None:
        self._table = table_name
        self._client = client
        self._pause = pause

    def by_status(self, status: JobStatus, *, since: str | None, limit: int,
                  start: Mapping[str, str] | None) -> tuple[list[Job], dict[str, str] | None]:
        condition = "#s = :s"
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": {"S": status.value}}
        if since:
            condition += " AND #c >= :since"
            names["#c"] = "created_at"  # DynamoDB refuses names the expression does not use
            values[":since"] = {"S": since}
        kwargs: dict[str, Any] = {
            "TableName": self._table, "IndexName": BY_STATUS_INDEX, "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
            "ScanIndexForward": False, "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = {k: {"S": str(v)} for k, v in start.items()}
        response = self._client.query(**kwargs)
        last = response.get("LastEvaluatedKey")
        return [_from_item(i) for i in response["Items"]], ({k: v["S"] for k, v in last.items()} if last else None)

    def by_batch(self, batch_id: str, *, status: JobStatus | None, limit: int,
                 start: Mapping[str, Any] | None) -> tuple[list[Job], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._table, "IndexName": BY_BATCH_INDEX, "KeyConditionExpression": "#b = :b",
            "ExpressionAttributeNames": {"#b": "batch_id"}, "ExpressionAttributeValues": {":b": {"S": batch_id}},
            "Limit": limit,
        }
        if status is not None:
            # A filter inside one batch's partition (bounded by the batch size), not a table scan.
            kwargs["FilterExpression"] = "#s = :s"
            kwargs["ExpressionAttributeNames"]["#s"] = "status"
            kwargs["ExpressionAttributeValues"][":s"] = {"S": status.value}
        if start:
            kwargs["ExclusiveStartKey"] = {
                "job_id": {"S": str(start["job_id"])}, "batch_id": {"S": str(start["batch_id"])},
                "batch_row": {"N": str(int(start["batch_row"]))},
            }
        response = self._client.query(**kwargs)
        last = response.get("LastEvaluatedKey")
        position = ({k: python_value(_deserializer.deserialize(v)) for k, v in last.items()} if last else None)
        return [_from_item(i) for i in response["Items"]], position


class DynamoElementCache:
    """Kling element ids by content hash, in the jobs table under ``element#<sha256>``."""

    # A hand-over refused because another ending job's hand-over is between its transfer and its
    # release (the holders are one over the limit for those few milliseconds) is tried again after
    # these pauses; without them, two jobs ending together left one waiting job to its delayed
    # message (1,000-upload load run: 84 of 892 hand-offs).
    HANDOVER_RETRY_PAUSES = (0.02, 0.05, 0.1)

    def __init__(self, table_name: str, client: Any, *, pause: Callable[[float], None] = time.sleep) -> None:
        self._table = table_name
        self._client = client
        self._pause = pause

    def _key(self, content_hash: str) -> dict[str, Any]:
        return {"job_id": {"S": ELEMENT_PREFIX + content_hash}}

    def get(self, content_hash: str) -> dict[str, Any] | None:
        item = self._client.get_item(TableName=self._table, Key=self._key(content_hash), ConsistentRead=True).get("Item")
        return _plain_item(item) if item else None

    def claim(self, content_hash: str, *, task_id: str, now: str) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**self._key(content_hash), "task_id": {"S": task_id}, "created_at": {"S": now}},
                # A forgotten (failed) creation leaves the item without a task: it may be claimed again.
                ConditionExpression="attribute_not_exists(job_id) OR attribute_not_exists(task_id)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def complete(self, content_hash: str, *, element_id: str, now: str) -> None:
        self._client.update_item(
            TableName=self._table, Key=self._key(content_hash), UpdateExpression="SET element_id = :e, ready_at = :now",
            ExpressionAttributeValues={":e": {"S": element_id}, ":now": {"S": now}},
        )

    def forget(self, content_hash: str) -> None:
        self._client.update_item(TableName=self._table, Key=self._key(content_hash),
                                 UpdateExpression="REMOVE task_id, element_id")


def _plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    plain = {k: python_value(_deserializer.deserialize(v)) for k, v in item.items() if k != _WRITE_TOKEN}
    for key, value in plain.items():
        if isinstance(value, set):
            plain[key] = sorted(python_value(v) for v in value)
    return plain
