"""Every alarm and dashboard query on clipedit's own metrics matches the metrics as they are written.

CloudWatch matches a metric's dimension set exactly: an alarm asking for ``{status}`` never sees a
data point written with ``{service, status}``. The metrics are rendered here by the real adapter
(Powertools' embedded metric format, with the functions' POWERTOOLS_* settings from the template)
driven through the real status recorder, and every alarm and dashboard query is checked against
those data points.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from clipedit.adapters.metrics import PowertoolsMetrics
from clipedit.domain.job import Job, JobStatus
from clipedit.usecases.common import StatusRecorder
from local.template import function_spec, load_template
from tests.fakes import FakeEvents

NAMESPACE = "clipedit/test-stack"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def written(template, monkeypatch, capsys) -> dict[str, list[frozenset[tuple[str, str]]]]:
    """MetricName -> the dimension sets of the data points the functions write."""
    environment = function_spec(template, "FinalizeFunction")["environment"]
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", environment["POWERTOOLS_SERVICE_NAME"])
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::Sub": "clipedit/${AWS::StackName}"}
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    recorder = StatusRecorder(events=FakeEvents(), now=lambda: "2026-12-05T05:00:00Z", metrics=PowertoolsMetrics())
    base = dict(input_bucket="inbox", input_key="incoming/a.mp4", created_at="2026-12-05T04:00:00Z",
                updated_at="2026-12-05T04:10:00Z")
    recorder(Job(job_id="j-s", status=JobStatus.SUBMITTED, submitted_at="2026-12-05T04:00:03Z", **base), "QUEUED")
    for status, code in ((JobStatus.SUCCEEDED, None), (JobStatus.FAILED, "KLING_1102"), (JobStatus.TIMED_OUT, None),
                         (JobStatus.REJECTED, "CLIP_TOO_LONG")):
        recorder(Job(job_id=f"j-{status}", status=status, error_code=code, finished_at="2026-12-05T04:10:00Z", **base),
                 "PROCESSING")
    recorder.provider_refused("KLING_1101")
    points: dict[str, list[frozenset[tuple[str, str]]]] = {}
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == NAMESPACE
            for dimension_names in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    points.setdefault(metric["Name"], []).append(frozenset((d, record[d]) for d in dimension_names))
    assert {"JobsFinished", "TimeToTerminal", "SubmitLatency", "ProviderErrors"} <= set(points)
    return points


def _ours(namespace: Any) -> bool:
    return namespace == {"Fn::Sub": "clipedit/${AWS::StackName}"}


def _alarm_queries(template: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    queries = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        metrics = [properties] if "MetricName" in properties else [
            m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
        for metric in metrics:
            if _ours(metric["Namespace"]):
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                queries.append((logical_id, metric["MetricName"], dimensions))
    return queries


def test_every_alarm_on_our_metrics_asks_for_a_dimension_set_that_is_written(template, written):
    queries = _alarm_queries(template)
    assert {alarm for alarm, _, _ in queries} == {"JobFailureRateAlarm", "JobsTimedOutAlarm", "ProviderBalanceAlarm"}
    for alarm, name, dimensions in queries:
        names_written = {frozenset(d for d, _ in point) for point in written[name]}
        assert frozenset(dimensions) in names_written, (alarm, name, dimensions, names_written)
        for dimension, value in dimensions.items():
            values_written = {v for point in written[name] for d, v in point if d == dimension}
            if dimension == "status":
                assert value in {s.value for s in JobStatus}, (alarm, value)
            elif dimension == "code":
                assert re.fullmatch(r"KLING_\d{4}", value), (alarm, value)
            else:  # fixed dimensions (service) must carry the value the functions write
                assert value in values_written, (alarm, dimension, value, values_written)


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    text, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert _ours(variables["Namespace"])
    text = text.replace("${Namespace}", NAMESPACE)
    return json.loads(re.sub(r"\$\{[^}]+\}", "x", text))


def _expanded_rows(rows: list[list[Any]]) -> list[list[str]]:
    """CloudWatch's shorthand: ``"..."`` repeats the row above but for the items that follow;
    ``"."`` repeats the item above at that position. Rendering options (the dict) dropped."""
    expanded: list[list[str]] = []
    for row in rows:
        items = [item for item in row if not isinstance(item, dict)]
        if items and items[0] == "...":
            previous = expanded[-1]
            items = previous[: len(previous) - (len(items) - 1)] + items[1:]
        elif expanded:
            items = [expanded[-1][i] if item == "." else item for i, item in enumerate(items)]
        expanded.append(items)
    return expanded


def test_every_dashboard_query_on_our_metrics_matches_what_is_written(template, written):
    checked = 0
    for widget in _dashboard(template)["widgets"]:
        for items in _expanded_rows(widget.get("properties", {}).get("metrics", [])):
            if items and items[0] == NAMESPACE:
                name, pairs = items[1], items[2:]
                dimensions = frozenset(zip(pairs[::2], pairs[1::2]))
                assert frozenset(d for d, _ in dimensions) in {frozenset(d for d, _ in p) for p in written[name]}, items
                fixed = {(d, v) for d, v in dimensions if d not in ("status", "code")}
                assert any(fixed <= point for point in written[name]), items
                checked += 1
        for row in widget.get("properties", {}).get("metrics", []):
            for item in row:
                search = re.search(r"SEARCH\('\{([^}]*)\}[^']*MetricName=\\?\"(\w+)\\?\"", str(item.get("expression", "")) if isinstance(item, dict) else "")
                if search:
                    namespace, *schema = search.group(1).split(",")
                    assert namespace == NAMESPACE
                    # A SEARCH schema matches metrics with exactly these dimension names.
                    assert frozenset(schema) in {frozenset(d for d, _ in p) for p in written[search.group(2)]}, schema
                    checked += 1
    assert checked >= 5
