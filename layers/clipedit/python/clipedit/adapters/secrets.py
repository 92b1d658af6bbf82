"""The provider secret, read from Secrets Manager and kept for ``max_age`` seconds.

A rotated key is picked up within ``max_age`` without a redeploy; the value is never logged. Written
out here instead of Powertools' parameters provider, whose import is a cold-start cost for one
``GetSecretValue`` call and a clock.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from clipedit.domain.errors import ConfigError


class SecretCache:
    def __init__(self, client: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, Any]] = {}

    def get_json(self, secret_id: str, *, max_age: float) -> Any:
        """The secret's JSON value, fetched again once it is older than ``max_age`` seconds."""
        with self._lock:
            cached = self._values.get(secret_id)
            if cached is not None and self._clock() - cached[0] < max_age:
                return cached[1]
        text = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
        try:
            value = json.loads(text)
        except ValueError:
            raise ConfigError("the provider secret is not valid JSON") from None
        with self._lock:
            self._values[secret_id] = (self._clock(), value)
        return value
