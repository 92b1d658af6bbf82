"""Shared fixtures: one local stack (moto server, real state machine, handlers in-process, Kling
emulator) for the integration and e2e suites, and realistic sample clips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory) -> Path:
    from local.media import make_sample_clip

    path = tmp_path_factory.mktemp("clips") / "sample.mp4"
    # The smallest clip inside Kling's limits (3 s, 720 px): cheap to render, accepted everywhere.
    make_sample_clip(path, seconds=3.0, width=1280, height=720, fps=24, with_audio=True, seed=7)
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    from local.stack import LocalOptions, LocalStack

    options = LocalOptions(
        state_dir=tmp_path_factory.mktemp("state"),
        name="test",
        poll_interval_seconds=1,
        job_deadline_seconds=600,
        visibility_timeout_seconds=2,
        emulator_overrides={"CLIPEDIT_EMULATOR_PROCESSING_SECONDS": "0.5", "CLIPEDIT_EMULATOR_SEED": "1"},
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture
def emulator(stack):
    """The stack's Kling emulator, its fault knobs reset after each test."""
    original = stack.emulator.settings
    yield stack.emulator
    stack.emulator.settings = original


@pytest.fixture
def client(stack):
    from local.client import LocalClient

    return LocalClient(stack.info)


def set_knobs(emulator, **changes) -> None:
    emulator.settings = dataclasses.replace(emulator.settings, **changes)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly when the review page's browser tests could not run (no Chromium on this machine)."""
    from tests.e2e.review_support import MISSING_REASON

    skipped = terminalreporter.stats.get("skipped", [])
    if any(MISSING_REASON in str(getattr(report, "longrepr", "")) for report in skipped):
        terminalreporter.write_sep("!", "REVIEW PAGE BROWSER TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(MISSING_REASON, red=True, bold=True)
