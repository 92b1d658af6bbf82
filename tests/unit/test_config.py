from __future__ import annotations

import pytest

from clipedit.config import Settings
from clipedit.domain.errors import ConfigError
from clipedit.domain.spec import Mode, Model

BASE = {
    "JOBS_TABLE": "jobs", "INBOX_BUCKET": "in", "OUTPUTS_BUCKET": "out", "EVENT_BUS_NAME": "bus",
    "PROVIDER_SECRET_ID": "arn:secret",
}


def test_minimal_environment_gets_documented_defaults():
    s = Settings.from_env(BASE)
    assert s.kling_api_base_url == "https://api-singapore.klingai.com"
    assert (s.default_model, s.default_mode, s.poll_interval_seconds, s.presign_ttl_seconds) == (
        Model.O3, Mode.PRO, 30, 3600)


def test_every_problem_is_reported_at_once():
    env = dict(BASE, JOBS_TABLE="", POLL_INTERVAL_SECONDS="soon", DEFAULT_MODE="ultra",
               KLING_API_BASE_URL="ftp://x", OUTPUT_PREFIX="edited")
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    message = info.value.message
    for fragment in ("JOBS_TABLE is required", "POLL_INTERVAL_SECONDS must be an integer",
                     "DEFAULT_MODE must be one of std, pro", "KLING_API_BASE_URL", "OUTPUT_PREFIX must end"):
        assert fragment in message


def test_fetch_policies_default_to_kling_cdn_results_and_any_public_reference():
    from clipedit.domain.url_policy import KLING_RESULT_HOSTS, RESULT_HOSTS, UrlPolicy

    s = Settings.from_env(BASE)
    assert s.result_host_allowlist == RESULT_HOSTS and "*.klingai.com" in s.result_host_allowlist
    assert set(KLING_RESULT_HOSTS) < set(RESULT_HOSTS) and "*.fal.media" in RESULT_HOSTS
    assert s.reference_host_allowlist == ()
    assert (s.allow_http_fetch, s.allow_private_network_fetch) == (False, False)
    assert s.result_url_policy == UrlPolicy(RESULT_HOSTS)
    assert s.reference_url_policy == UrlPolicy()
    # The template passes "" for a cleared parameter: results still only come from the default list.
    assert Settings.from_env(dict(BASE, RESULT_HOST_ALLOWLIST="", REFERENCE_HOST_ALLOWLIST="")) == s


def test_fetch_policies_from_the_environment():
    s = Settings.from_env(dict(
        BASE, RESULT_HOST_ALLOWLIST=" *.klingai.com , CDN.Example.com.,", REFERENCE_HOST_ALLOWLIST="media.example.com",
        ALLOW_HTTP_FETCH="true", ALLOW_PRIVATE_NETWORK_FETCH="1"))
    assert s.result_host_allowlist == ("*.klingai.com", "cdn.example.com")
    assert s.reference_host_allowlist == ("media.example.com",)
    assert s.result_url_policy.allow_http and s.result_url_policy.allow_private
    # The relaxations are for the local emulator's results, never for users' references.
    assert not s.reference_url_policy.allow_http and not s.reference_url_policy.allow_private


def test_bad_fetch_settings_are_reported_at_init():
    env = dict(BASE, RESULT_HOST_ALLOWLIST="*.com,https://x.example", REFERENCE_HOST_ALLOWLIST="a/b",
               ALLOW_HTTP_FETCH="maybe", ALLOW_PRIVATE_NETWORK_FETCH="yes please")
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    message = info.value.message
    for fragment in ("RESULT_HOST_ALLOWLIST", "REFERENCE_HOST_ALLOWLIST", "ALLOW_HTTP_FETCH must be true or false",
                     "ALLOW_PRIVATE_NETWORK_FETCH must be true or false"):
        assert fragment in message


def test_backpressure_settings_are_read_and_bad_ones_refused_at_init():
    s = Settings.from_env(dict(BASE, PROVIDER_CONCURRENCY_LIMIT="12", MAX_QUEUE_WAIT_SECONDS="7200",
                               FINALIZE_LEASE_SECONDS="400", MAX_RECEIVE_COUNT="3"))
    assert (s.backpressure.concurrency_limit, s.backpressure.max_queue_wait_seconds) == (12, 7200)
    assert (s.finalize_lease_seconds, s.max_receive_count) == (400, 3)
    assert Settings.from_env(BASE).backpressure.concurrency_limit == 5
    with pytest.raises(ConfigError) as info:
        Settings.from_env(dict(BASE, PROVIDER_CONCURRENCY_LIMIT="0", RETRY_MAX_SECONDS="901",
                               MAX_QUEUE_WAIT_SECONDS="10", MAX_RECEIVE_COUNT="five"))
    for fragment in ("PROVIDER_CONCURRENCY_LIMIT must be between 1 and 1000", "RETRY_MAX_SECONDS must be between",
                     "MAX_QUEUE_WAIT_SECONDS must be between 60", "MAX_RECEIVE_COUNT must be an integer"):
        assert fragment in info.value.message
