"""What the pages show, computed from job records (public fields only) and batch records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from clipedit.domain.job import Job, JobStatus, TERMINAL_STATUSES

STATUS_ORDER = [s.value for s in JobStatus]


def money(value: float | None) -> str:
    return "" if value is None else f"${value:,.2f}"


def spent(jobs: Iterable[Job]) -> float:
    return float(sum((Decimal(str(j.cost_usd)) for j in jobs if j.cost_usd is not None), Decimal(0)))


def counts(jobs: Iterable[Job]) -> dict[str, int]:
    result: dict[str, int] = {}
    for job in jobs:
        result[job.status.value] = result.get(job.status.value, 0) + 1
    return {k: result[k] for k in STATUS_ORDER if k in result}


def clip_name(job: Job) -> str:
    video = job.video_ref or {}
    name = video.get("key") or video.get("url") or job.input_key if isinstance(video, dict) else str(video)
    return str(name).rsplit("/", 1)[-1].split("?", 1)[0]


def batch_progress(batch: dict[str, Any]) -> dict[str, Any]:
    total = int(batch.get("total") or 0)
    done = int(batch.get("terminal") or 0)
    succeeded = int((batch.get("counts") or {}).get("SUCCEEDED", 0))
    return {"batch_id": batch.get("batch_id"), "total": total, "done": done, "succeeded": succeeded,
            "percent": round(100 * done / total) if total else 0, "source": batch.get("source_key", "")}


def is_terminal(job: Job) -> bool:
    return job.status in TERMINAL_STATUSES


def timeline(job: Job) -> list[dict[str, str]]:
    return [{"status": h.get("status", ""), "at": h.get("at", "")[:19].replace("T", " ")}
            for h in job.status_history or []]


def spec_rows(job: Job) -> list[tuple[str, str]]:
    framing = job.framing or {}
    rows = [("prompt", job.prompt or ""), ("provider", job.provider), ("model", job.model or ""),
            ("mode", job.mode or ""), ("keep audio", "" if job.keep_audio is None else str(job.keep_audio).lower())]
    for name in ("platform", "aspect_ratio", "reframe", "focus", "trim", "video_mode", "duration"):
        if framing.get(name) not in (None, ""):
            rows.append((name.replace("_", " "), str(framing[name])))
    if job.elements:
        rows.append(("elements", f"{len(job.elements)} element(s)"))
    if job.tags:
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in job.tags.items())))
    for name in ("retry_of", "revision"):
        if job.extra.get(name):
            rows.append((name.replace("_", " "), str(job.extra[name])))
    return [(k, v) for k, v in rows if v]
