"""HandlerTracer: X-Ray only where tracing is on, and then built once, on the first invocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipedit.adapters.tracing import HandlerTracer, tracing_active

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("environ", "active"), [
    ({}, False),
    ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, True),
    ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
])
def test_tracing_is_on_only_in_lambda_and_not_disabled(environ, active):
    assert tracing_active(environ) is active


def test_inactive_tracer_returns_the_handler_itself():
    def handler(event, context):
        return {"echo": event}

    tracer = HandlerTracer(active=False)
    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler


def test_active_tracer_builds_the_powertools_tracer_on_first_call_only(monkeypatch):
    import aws_lambda_powertools

    built = []

    class RecordingTracer:
        def __init__(self, **kwargs):
            built.append(kwargs)

        def capture_lambda_handler(self, handler, capture_response=True):
            def wrapped(event, context):
                return {"traced": handler(event, context), "capture_response": capture_response}
            return wrapped

    monkeypatch.setattr(aws_lambda_powertools, "Tracer", RecordingTracer)
    tracer = HandlerTracer(active=True)
    traced = tracer.capture_lambda_handler(capture_response=False)(lambda event, context: event["n"] * 2)
    assert built == []  # nothing loaded at import (decoration) time
    assert traced({"n": 2}, None) == {"traced": 4, "capture_response": False}
    assert traced({"n": 3}, None) == {"traced": 6, "capture_response": False}
    assert built == [{"patch_modules": ("botocore", "httpx")}]


def test_loading_a_handler_outside_lambda_never_imports_the_xray_sdk(tmp_path):
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(ROOT / 'functions/submit/app.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('aws_xray_sdk'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LAMBDA_TASK_ROOT"}
    env.update(JOBS_TABLE="jobs", INBOX_BUCKET="inbox", OUTPUTS_BUCKET="outputs", EVENT_BUS_NAME="bus",
               PROVIDER_SECRET_ID="secret", AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_METRICS_NAMESPACE="test",
               PYTHONPATH=os.pathsep.join([str(ROOT / "layers/clipedit/python"), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
