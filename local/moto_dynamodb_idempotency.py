"""DynamoDB's ``TransactWriteItems`` client request token, honoured by the local stack's moto.

DynamoDB makes a transaction idempotent by its ``ClientRequestToken`` (the SDK fills one in per
call and sends the same one on its retries): for 10 minutes after a call with a token succeeded,
an identical call with that token succeeds without writing again, and a call with the same token
but other parameters is refused with ``IdempotentParameterMismatchException``. moto 5.2.5 ignores
the token, so a retried transaction is applied twice. The job store relies on the token where a
write is not conditional (a batch's counters), so the emulator must keep this part of the contract.
Only successful calls are remembered: the documentation speaks of those alone.
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
