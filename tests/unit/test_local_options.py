"""The local stack's fault-run options are checked before anything starts."""

from __future__ import annotations

import pytest

from local.stack import LocalOptions, LocalStack


def test_the_finalize_crash_rate_comes_from_the_environment_and_must_be_a_share():
    assert LocalOptions.from_env({"CLIPEDIT_LOCAL_FINALIZE_CRASH_RATE": "0.25"}).finalize_crash_rate == 0.25
    assert LocalOptions.from_env({}).finalize_crash_rate == 0.0
    with pytest.raises(ValueError, match="CLIPEDIT_LOCAL_FINALIZE_CRASH_RATE must be between 0 and 1"):
        LocalOptions.from_env({"CLIPEDIT_LOCAL_FINALIZE_CRASH_RATE": "1.5"})
    with pytest.raises(ValueError, match="must be a number"):
        LocalOptions.from_env({"CLIPEDIT_LOCAL_FINALIZE_CRASH_RATE": "often"})


def test_a_misspelt_template_parameter_override_is_refused_before_the_stack_starts(tmp_path):
    with pytest.raises(ValueError, match="not template parameters: ProviderConcurrency"):
        LocalStack(LocalOptions(state_dir=tmp_path, parameter_overrides={"ProviderConcurrency": "4"}))
    stack = LocalStack(LocalOptions(state_dir=tmp_path, parameter_overrides={"ProviderConcurrencyLimit": "4"}))
    assert stack.info == {}  # accepted, and nothing started by the constructor
