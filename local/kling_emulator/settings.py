"""The emulator's behaviour knobs (`EmulatorSettings`), read from the `CLIPEDIT_EMULATOR_*` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


# Dataclass field -> environment variable (prefix CLIPEDIT_EMULATOR_).
_ENV_NAMES = {
    "processing_seconds": "PROCESSING_SECONDS",
    "concurrency": "CONCURRENCY",
    "fail_rate": "FAIL_RATE",
    "error_rate": "ERROR_RATE",
    "drop_callback_rate": "DROP_CALLBACK_RATE",
    "duplicate_callback_rate": "DUPLICATE_CALLBACK_RATE",
    "seed": "SEED",
    "render": "RENDER",
    "element_seconds": "ELEMENT_SECONDS",
    "latency_seconds": "LATENCY_SECONDS",
    "lost_response_rate": "LOST_RESPONSE_RATE",
}
ENV_PREFIX = "CLIPEDIT_EMULATOR_"
RENDER_MODES = ("grade", "copy")


class _SettingError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name} {message}")
        self.field_name, self.detail = field_name, message


@dataclass(frozen=True)
class EmulatorSettings:
    """Behaviour knobs; `from_env` reads the `CLIPEDIT_EMULATOR_*` variables (see `_ENV_NAMES`)."""

    processing_seconds: float = 2.0  # time a task spends "processing" before it is rendered
    concurrency: int = 5  # account concurrency: tasks in submitted/processing each hold a slot
    fail_rate: float = 0.0  # share of tasks that end `failed` (risk control)
    error_rate: float = 0.0  # share of API calls answered HTTP 500 code 5000
    drop_callback_rate: float = 0.0  # share of callbacks never sent
    duplicate_callback_rate: float = 0.0  # share of callbacks sent twice
    seed: int = 0
    render: str = "grade"  # "grade": real re-encode; "copy": serve the input bytes unchanged (load tests)
    element_seconds: float = 0.5  # time an element-creation task spends "processing"
    latency_seconds: float = 0.0  # added before every API answer (slow responses; past the
    # client's read timeout this is a timeout, with the work possibly done)
    lost_response_rate: float = 0.0  # share of accepted creates answered 504/5002 anyway: the task
    # exists but the caller cannot know (Kling: "check by external_task_id before resubmitting")

    def __post_init__(self) -> None:
        for name in ("processing_seconds", "element_seconds", "latency_seconds"):
            value = getattr(self, name)
            if not value >= 0.0 or value == float("inf"):  # also rejects NaN
                raise _SettingError(name, f"must be a finite number >= 0, got {value}")
        if self.concurrency < 1:
            raise _SettingError("concurrency", f"must be >= 1, got {self.concurrency}")
        for name in ("fail_rate", "error_rate", "drop_callback_rate", "duplicate_callback_rate", "lost_response_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise _SettingError(name, f"must be between 0 and 1, got {value}")
        if self.render not in RENDER_MODES:
            raise _SettingError("render", f"must be one of {', '.join(RENDER_MODES)}, got {self.render!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> EmulatorSettings:
        parsers: dict[str, type] = {"concurrency": int, "seed": int, "render": str}
        values: dict[str, Any] = {}
        for field_name, suffix in _ENV_NAMES.items():
            raw = environ.get(ENV_PREFIX + suffix, "").strip()
            if not raw:
                continue
            parse = parsers.get(field_name, float)
            try:
                values[field_name] = parse(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{suffix}={raw!r} is not a valid {parse.__name__}") from None
        try:
            return cls(**values)
        except _SettingError as exc:
            # Name the environment variable, not the dataclass field, so the fix is obvious.
            raise ValueError(f"{ENV_PREFIX}{_ENV_NAMES[exc.field_name]} {exc.detail}") from None


# ---------------------------------------------------------------------------------------------
# Errors and tasks
