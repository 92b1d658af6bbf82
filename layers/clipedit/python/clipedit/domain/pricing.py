"""What an edit costs: one table of list prices per provider, model and mode, per output second.

The defaults are the public list prices below, with the date they were read and where; a stack
overrides any of them with its ``PriceOverrides`` parameter (JSON, the same shape as
``DEFAULT_PRICES``: ``{"kling": {"o3": {"std": 0.126}}}``). Estimates (``clipedit batch --plan``,
the review page) and the cost recorded on a finished job both come from here, so they agree.

A finished Kling job also reports what it was actually charged (``final_unit_deduction``, in
prepaid units): that figure wins over the estimate. fal reports no per-request billing in its
queue API, so a fal job's cost is the table's price for the seconds it produced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Mapping

from clipedit.domain.errors import ConfigError

PRICES_READ_ON = "2026-12-01"
PRICE_SOURCES = {
    # provider-apis.md 1.11: Kling's price list as transcribed by inference-sh/grid api/klingai/pricing.md
    # (video input: O1/O3 std 0.9 units/s, pro 1.2 units/s; 1 unit = $0.14).
    "kling": "https://github.com/inference-sh/grid/blob/main/api/klingai/pricing.md (Kling official price list)",
    # provider-apis.md 2.7: fal's O3 pro edit page ($0.336/s); std and O1 from client catalogs.
    "fal": "https://fal.ai/models/fal-ai/kling-video/o3/pro/video-to-video/edit/llms.txt",
}
USD_PER_KLING_UNIT = Decimal("0.14")
# USD per output second.
DEFAULT_PRICES: dict[str, dict[str, dict[str, float]]] = {
    "kling": {"o3": {"std": 0.126, "pro": 0.168}, "o1": {"std": 0.126, "pro": 0.168}},
    "fal": {"o3": {"std": 0.252, "pro": 0.336}, "o1": {"std": 0.126, "pro": 0.168}},
}
COST_FROM_PROVIDER = "provider_units"  # Kling's final_unit_deduction x USD_PER_KLING_UNIT
COST_FROM_TABLE = "price_table"


@dataclass(frozen=True)
class Cost:
    usd: float
    source: str  # COST_FROM_PROVIDER or COST_FROM_TABLE


def billed_seconds(seconds: float) -> int:
    """Providers bill whole seconds: the clip's length rounded to the nearest second (at least 1)."""
    whole = Decimal(str(seconds)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(1, int(whole))


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


class PriceTable:
    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        prices = {p: {m: dict(modes) for m, modes in models.items()} for p, models in DEFAULT_PRICES.items()}
        overridden: set[str] = set()
        for provider, models in (overrides or {}).items():
            if not isinstance(models, Mapping):
                raise ConfigError(f"PriceOverrides: {provider} must map models to modes to USD per second")
            for model, modes in models.items():
                if not isinstance(modes, Mapping):
                    raise ConfigError(f"PriceOverrides: {provider}.{model} must map modes to USD per second")
                for mode, price in modes.items():
                    if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price <= 100:
                        raise ConfigError(f"PriceOverrides: {provider}.{model}.{mode} must be a number of USD "
                                          f"per second from 0 to 100, got {price!r}")
                    prices.setdefault(str(provider), {}).setdefault(str(model), {})[str(mode)] = float(price)
                    overridden.add(f"{provider}.{model}.{mode}")
        self._prices = prices
        self.overridden = frozenset(overridden)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PriceTable) and other._prices == self._prices

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_json(cls, text: str | None) -> "PriceTable":
        if not text or not text.strip():
            return cls()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"PriceOverrides is not valid JSON: {error.msg}") from None
        if not isinstance(value, dict):
            raise ConfigError('PriceOverrides must be a JSON object like {"kling": {"o3": {"pro": 0.168}}}')
        return cls(value)

    def per_second(self, provider: str, model: str, mode: str) -> float | None:
        return self._prices.get(provider, {}).get(model, {}).get(mode)

    def estimate(self, provider: str, model: str, mode: str, seconds: float) -> float | None:
        """USD for an output of ``seconds``; None when the table has no price for this combination."""
        rate = self.per_second(provider, model, mode)
        if rate is None:
            return None
        return _money(Decimal(str(rate)) * billed_seconds(seconds))

    def actual(self, *, provider: str, model: str, mode: str, seconds: float | None,
               provider_units: str | None) -> Cost | None:
        """What a finished job cost: the provider's own charge when it reports one, else the table."""
        if provider == "kling" and provider_units:
            try:
                return Cost(_money(Decimal(provider_units) * USD_PER_KLING_UNIT), COST_FROM_PROVIDER)
            except InvalidOperation:
                pass
        if seconds is None:
            return None
        estimated = self.estimate(provider, model, mode, seconds)
        return None if estimated is None else Cost(estimated, COST_FROM_TABLE)

    def as_dict(self) -> dict[str, Any]:
        return {"usd_per_output_second": self._prices, "read_on": PRICES_READ_ON, "sources": PRICE_SOURCES,
                "usd_per_kling_unit": float(USD_PER_KLING_UNIT), "overridden": sorted(self.overridden)}
