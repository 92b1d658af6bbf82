"""The cold start bench's summary (issue 16): the wall ratio (the target) and, beside it, the ratio
of the children's CPU time at ready, each from the median of its own samples."""

from __future__ import annotations

import pytest

from bench.cold_start import summarise


def sample(ready_s: float, cpu_s: float) -> dict[str, float]:
    return {"ready_s": ready_s, "cpu_s": cpu_s, "wall_s": ready_s + 0.05, "import_s": ready_s / 2,
            "init_s": ready_s / 4, "modules": 100, "rss_kb": 50_000}


def test_the_cpu_ratio_is_the_median_cpu_of_the_handler_over_the_baselines():
    samples = {
        # A loaded machine: one handler child waited for a core (wall 0.9 s) but used no more CPU.
        "handler": [sample(0.30, 0.13), sample(0.90, 0.12), sample(0.32, 0.14)],
        "baseline": [sample(0.20, 0.10), sample(0.25, 0.10), sample(0.21, 0.11)],
    }
    summary = summarise(samples, runs=3)
    assert summary["handler"]["cpu_s"] == 0.13
    assert summary["baseline"]["cpu_s"] == 0.10
    assert summary["ratio_cpu"] == pytest.approx(1.3)
    assert summary["ratio_ready"] == pytest.approx(0.32 / 0.21)  # the wall figure stays the target's
    assert summary["runs"] == 3
