"""The price table: list prices, overrides from the stack parameter, the cost a finished job records."""

import pytest

from clipedit.config import Settings
from clipedit.domain.errors import ConfigError
from clipedit.domain.pricing import COST_FROM_PROVIDER, COST_FROM_TABLE, PriceTable, billed_seconds

BASE_ENV = {"JOBS_TABLE": "t", "INBOX_BUCKET": "i", "OUTPUTS_BUCKET": "o", "EVENT_BUS_NAME": "b",
            "PROVIDER_SECRET_ID": "s"}


def test_list_prices_per_output_second_billed_in_whole_seconds():
    table = PriceTable()
    assert table.estimate("kling", "o3", "pro", 4.0) == pytest.approx(0.672)
    assert table.estimate("kling", "o3", "std", 5.4) == pytest.approx(0.63)
    assert table.estimate("fal", "o3", "pro", 5.0) == pytest.approx(1.68)
    assert billed_seconds(4.5) == 5 and billed_seconds(4.49) == 4 and billed_seconds(0.2) == 1
    assert table.estimate("replicate", "o3", "pro", 5.0) is None


def test_overrides_replace_only_what_they_name():
    table = PriceTable.from_json('{"kling": {"o3": {"pro": 0.2}}}')
    assert table.estimate("kling", "o3", "pro", 5.0) == pytest.approx(1.0)
    assert table.estimate("kling", "o3", "std", 5.0) == pytest.approx(0.63)
    assert table.as_dict()["overridden"] == ["kling.o3.pro"]


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ('{"kling": {"o3": {"pro": "cheap"}}}', "kling.o3.pro must be a number"),
    ('{"kling": {"o3": {"pro": -1}}}', "from 0 to 100"),
    ('{"kling": 3}', "must map models"),
])
def test_bad_overrides_are_refused_at_init_with_the_reason(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        PriceTable.from_json(text)
    with pytest.raises(ConfigError, match="PriceOverrides"):
        Settings.from_env({**BASE_ENV, "PRICE_OVERRIDES": text})


def test_settings_carry_the_overridden_table():
    settings = Settings.from_env({**BASE_ENV, "PRICE_OVERRIDES": '{"fal": {"o3": {"std": 0.3}}}'})
    assert settings.prices.per_second("fal", "o3", "std") == 0.3


def test_actual_cost_prefers_klings_own_deduction_over_the_table():
    table = PriceTable()
    kling = table.actual(provider="kling", model="o3", mode="pro", seconds=5.0, provider_units="6")
    assert (kling.usd, kling.source) == (pytest.approx(0.84), COST_FROM_PROVIDER)
    fal = table.actual(provider="fal", model="o3", mode="pro", seconds=5.0, provider_units=None)
    assert (fal.usd, fal.source) == (pytest.approx(1.68), COST_FROM_TABLE)
    assert table.actual(provider="fal", model="o3", mode="pro", seconds=None, provider_units=None) is None
