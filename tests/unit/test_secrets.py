"""SecretCache: one GetSecretValue per max_age, the JSON value, a clear error for bad JSON."""

from __future__ import annotations

import pytest

from clipedit.adapters.secrets import SecretCache
from clipedit.domain.errors import ConfigError


class FakeSecretsManager:
    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def get_secret_value(self, SecretId):  # noqa: N803 (boto3's name)
        self.calls += 1
        return {"SecretString": self.value, "Name": SecretId}


def test_a_secret_is_fetched_once_per_max_age_and_rotation_is_picked_up_after():
    now = [1000.0]
    client = FakeSecretsManager('{"access_key": "ak-1", "secret_key": "sk-1"}')
    cache = SecretCache(client, clock=lambda: now[0])
    assert cache.get_json("arn:secret", max_age=300) == {"access_key": "ak-1", "secret_key": "sk-1"}
    now[0] += 299
    client.value = '{"access_key": "ak-2", "secret_key": "sk-2"}'  # rotated
    assert cache.get_json("arn:secret", max_age=300)["access_key"] == "ak-1" and client.calls == 1
    now[0] += 2
    assert cache.get_json("arn:secret", max_age=300)["access_key"] == "ak-2" and client.calls == 2


def test_max_age_zero_reads_every_time():
    client = FakeSecretsManager('{"k": 1}')
    cache = SecretCache(client, clock=lambda: 5.0)
    cache.get_json("s", max_age=0)
    cache.get_json("s", max_age=0)
    assert client.calls == 2


def test_a_secret_that_is_not_json_is_a_config_error_without_its_value():
    cache = SecretCache(FakeSecretsManager("sk-plain-text-value"))
    with pytest.raises(ConfigError) as error:
        cache.get_json("s", max_age=60)
    assert "sk-plain-text-value" not in str(error.value)
