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
