"""CloudWatch metrics through Powertools' embedded metric format (EMF): a log line per data point,
turned into metrics by CloudWatch with no API call and no extra latency.

``single_metric`` rather than one shared ``Metrics`` object: each data point carries its own
dimensions (status, error code), and the local stack runs several invocations in one process at
once, which a shared buffer flushed per invocation would mix up.
"""

from __future__ import annotations

import os
from typing import Mapping

from aws_lambda_powertools.metrics import MetricUnit, single_metric


class PowertoolsMetrics:
    def __init__(self, namespace: str | None = None) -> None:
        self._namespace = namespace  # None: POWERTOOLS_METRICS_NAMESPACE
        # single_metric ignores POWERTOOLS_METRICS_DISABLED (the tests and the local stack set it).
        self._disabled = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() in ("true", "1")

    def _emit(self, name: str, unit: MetricUnit, value: float, dimensions: Mapping[str, str] | None) -> None:
        if self._disabled:
            return
        with single_metric(name=name, unit=unit, value=value, namespace=self._namespace) as metric:
            for key, dimension in (dimensions or {}).items():
                metric.add_dimension(name=key, value=dimension)

    def count(self, name: str, *, dimensions: Mapping[str, str] | None = None, value: float = 1) -> None:
        self._emit(name, MetricUnit.Count, value, dimensions)

    def seconds(self, name: str, value: float, *, dimensions: Mapping[str, str] | None = None) -> None:
        self._emit(name, MetricUnit.Seconds, value, dimensions)
