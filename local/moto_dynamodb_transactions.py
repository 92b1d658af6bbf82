"""DynamoDB transactions on the local stack's moto: the client request token, and the cost of one.

``patch_moto_transaction_tokens``: DynamoDB makes a transaction idempotent by its
``ClientRequestToken`` (the SDK fills one in per call and sends the same one on its retries): for
10 minutes after a call with a token succeeded, an identical call with that token succeeds without
writing again, and a call with the same token but other parameters is refused with
``IdempotentParameterMismatchException``. moto 5.2.5 ignores
the token, so a retried transaction is applied twice. The job store relies on the token where a
write is not conditional (a batch's counters), so the emulator must keep this part of the contract.
Only successful calls are remembered: the documentation speaks of those alone.

``patch_moto_single_item_transactions``: moto backs up every table a transaction touches with a
deep copy before it starts, to roll back on failure, so a transaction costs time in proportion to
the whole table (a 1,000-row catalog ran 4x slower once each count change became one). A
transaction of one ``Update`` has nothing to roll back: its condition is checked before anything is
written. It runs as the plain update it is, and fails as a transaction does.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

IDEMPOTENCY_WINDOW_SECONDS = 600.0


def patch_moto_transaction_tokens(clock: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    from moto.core.responses import ActionResult
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.transact_write_items
    lock = threading.Lock()  # check, apply and remember as one step: two identical calls apply once
    # (account, region, token) -> (when it succeeded, its items), oldest first: expiry pops the front
    done: OrderedDict[tuple[str, str, str], tuple[float, str]] = OrderedDict()

    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return original(self)
        key = (self.current_account, self.region, token)
        request = json.dumps(self.body.get("TransactItems"), sort_keys=True)
        with lock:
            now = clock()
            while done and now - next(iter(done.values()))[0] > IDEMPOTENCY_WINDOW_SECONDS:
                done.popitem(last=False)
            seen = done.get(key)
            if seen is not None:
                if seen[1] != request:
                    raise DynamodbException(
                        ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
                        "The request uses the same client token as a previous, but non-identical request.")
                return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})  # moto's success answer
            result = original(self)  # a cancelled transaction raises: only a success is remembered
            done[key] = (clock(), request)
            return result

    DynamoHandler.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        DynamoHandler.transact_write_items = original  # type: ignore[method-assign]

    return undo


def patch_moto_single_item_transactions() -> Callable[[], None]:
    from moto.dynamodb.exceptions import ConditionalCheckFailed, MockValidationException, TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) != 1 or list(transact_items[0]) != ["Update"]:
            return original(self, transact_items)
        update = transact_items[0]["Update"]
        try:
            self.update_item(
                update["TableName"], update["Key"], update_expression=update["UpdateExpression"],
                expression_attribute_names=update.get("ExpressionAttributeNames"),
                expression_attribute_values=update.get("ExpressionAttributeValues"),
                condition_expression=update.get("ConditionExpression"))
        except MockValidationException:
            raise  # as moto's own transaction does: a malformed request is not a cancellation
        except ConditionalCheckFailed as error:
            current = self.get_item(update["TableName"], update["Key"])
            wanted = update.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None
            item = current.to_json()["Attributes"] if wanted else None
            raise TransactionCanceledException([("ConditionalCheckFailed", str(error.message), item)])
        except Exception as error:  # moto's transaction reports any other failure as a reason too
            raise TransactionCanceledException([(type(error).__name__, str(error), None)])
        return None

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]

    return undo
