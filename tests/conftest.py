"""Shared fixtures: one local stack (moto server, real state machine, handlers in-process, Kling
emulator) for the integration and e2e suites, and realistic sample clips."""

from __future__ import annotations

import contextlib
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


@pytest.fixture(scope="session")
def client(stack):
    """One per worker: LocalClient holds nothing but its boto3 clients, whose creation (a session
    loading three service models) cost about 0.1 CPU-s per test when made per test."""
    from local.client import LocalClient

    return LocalClient(stack.info)


@pytest.fixture
def moto_s3(monkeypatch):
    """An S3 client on a moto server of the test's own; the buckets the test makes are removed after.

    Not moto's in-process ``mock_aws``: it resets every moto backend when it starts and stops,
    which wipes the buckets of a local stack another test module left running in this worker
    (pytest-xdist interleaves modules), and it would intercept that stack's handler threads too.
    moto's backends are per process, so what the test makes is emptied and deleted afterwards."""
    import boto3

    with _moto_server(monkeypatch) as endpoint:
        client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        yield from _removing_new_buckets(client)


@pytest.fixture
def moto_dynamodb(monkeypatch):
    """A DynamoDB client on a moto server of the test's own (not ``mock_aws``, see ``moto_s3``);
    the tables the test makes are deleted after. Give them names no local stack uses."""
    import boto3

    with _moto_server(monkeypatch) as endpoint:
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        before = set(client.list_tables()["TableNames"])
        try:
            yield client
        finally:
            for table in set(client.list_tables()["TableNames"]) - before:
                client.delete_table(TableName=table)


@contextlib.contextmanager
def _moto_server(monkeypatch):
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _removing_new_buckets(client):
    before = {b["Name"] for b in client.list_buckets()["Buckets"]}
    try:
        yield client
    finally:
        for bucket in {b["Name"] for b in client.list_buckets()["Buckets"]} - before:
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            listing = client.list_object_versions(Bucket=bucket)
            for item in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
                client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
            client.delete_bucket(Bucket=bucket)


def set_knobs(emulator, **changes) -> None:
    emulator.settings = dataclasses.replace(emulator.settings, **changes)


@pytest.fixture
def emulator_returns_inputs(emulator):
    """Kling's emulator serves each task's input as its result (its ``copy`` render: no decode, grade
    or encode), for tests about orchestration or about the clip that reached the provider rather
    than the edited picture. The ``emulator`` fixture restores the knob."""
    set_knobs(emulator, render="copy")
    return emulator


@contextlib.contextmanager
def prepare_messages_come_back_after(stack, sqs, seconds: int):
    """Shorten the local prepare queue's visibility timeout (120 s) so a crashed prepare or stitch
    is redelivered within ``seconds``; restored afterwards."""
    queue = stack.info["prepare_queue_url"]
    saved = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["VisibilityTimeout"])["Attributes"]
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": str(seconds)})
    # A long poll already under way keeps the old 120 s for a message it receives: wait it out.
    stack.prepare_dispatcher.wait_for_fresh_receive()
    try:
        yield
    finally:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes=saved)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly when the review page's browser tests could not run (no Chromium on this machine)."""
    from tests.e2e.review_support import MISSING_REASON

    skipped = terminalreporter.stats.get("skipped", [])
    if any(MISSING_REASON in str(getattr(report, "longrepr", "")) for report in skipped):
        terminalreporter.write_sep("!", "REVIEW PAGE BROWSER TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(MISSING_REASON, red=True, bold=True)


# Modules that take a worker longest, longest first. `-n 3 --dist loadscope` hands modules to the
# workers in collection order; starting the long ones first keeps one from running alone at the end.
LONGEST_FIRST = ("tests/integration/test_chaos.py", "tests/e2e/test_long_clips.py", "tests/e2e/test_local_stack.py",
                 "tests/e2e/test_platform_variants.py", "tests/e2e/test_cli.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order
