"""Injected faults: seeded decisions for failed tasks, 5xx answers, lost responses, dropped and
duplicated callbacks.

Randomised behaviour (fail/error/drop/duplicate rates) is drawn from one `random.Random(seed)`; a
rate of exactly 0 or 1 never consumes randomness, so those runs are fully deterministic.
"""

from __future__ import annotations

import random
from typing import Any

from local.kling_emulator.settings import EmulatorSettings

# Messages seen for moderation failures surfaced at the end of a task (section 4, item 2).
RISK_CONTROL_MESSAGES = (
    "Failure to pass the risk control system",
    "The content you submitted may violate community guidelines (risk control)",
)


def callback_copies(rng: random.Random, settings: EmulatorSettings, stats: dict[str, Any]) -> int:
    """How many times to send one callback: 0 (dropped), 1, or 2 (duplicated), per the knobs."""
    if seeded_chance(rng, settings.drop_callback_rate):
        stats["callbacks_dropped"] += 1
        return 0
    if seeded_chance(rng, settings.duplicate_callback_rate):
        stats["callbacks_duplicated"] += 1
        return 2
    return 1


def seeded_chance(rng: random.Random, rate: float) -> bool:
    """One fault decision: rates 0 and 1 draw nothing, so they never shift a seeded sequence."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return rng.random() < rate


class Faults:
    """The emulator's fault decisions, all from its one seeded RNG (``self._rng``)."""

    def _chance(self, rate: float) -> bool:
        with self._cond:
            return self._chance_locked(rate)

    def _chance_locked(self, rate: float) -> bool:
        return seeded_chance(self._rng, rate)
