"""DynamoDB answers of the local stack written with ``json.dumps``, not moto's shape serializer.

moto 5.2.5 writes every answer by walking the operation's output shape member by member
(``moto.core.serialize``): for DynamoDB, whose results are already plain JSON-ready dicts in wire
form, that walk was 13 % of ``make test``'s GIL time and 29 % of ``make chaos``'s (py-spy ``--gil``),
most of it items with long status histories. For DynamoDB's JSON protocol the shape walk changes
nothing in such a dict: the members are the dict's keys, strings and numbers go out as they are.
What it does change falls back to it: bytes (binary attributes, base64 by the shape) and datetimes
(table descriptions, epoch seconds by the shape) make ``json.dumps`` raise, and then moto's
serializer writes that answer as before.
"""

from __future__ import annotations

import json
from typing import Any, Callable

_CONTENT_TYPE = "application/x-amz-json-1.0"  # DynamoDB's protocol: json, version 1.0


def patch_moto_dynamodb_json() -> Callable[[], None]:
    from moto.dynamodb.responses import DynamoResult

    original = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        try:
            body = json.dumps(self.result)
        except (TypeError, ValueError):  # bytes, datetimes: what the shape must encode
            return original(self, context)
        return 200, {"Content-Type": _CONTENT_TYPE}, body

    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]

    def undo() -> None:
        DynamoResult.execute_result = original  # type: ignore[method-assign]

    return undo
