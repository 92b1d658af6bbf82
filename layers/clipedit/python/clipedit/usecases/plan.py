"""Plan a batch before paying for it: every row checked as the pipeline would check it, and priced.

The rows go through the same expansion intake uses (columns, presets, placeholders, spec checks),
then through the same media checks submit makes before it calls a provider (a ranged-read probe of
the clip, the prepare plan its framing needs, every reference image). Nothing is created, queued
or submitted: the plan is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from clipedit.domain.errors import MediaRejected, SpecError
from clipedit.domain.job import JobStatus
from clipedit.domain.pricing import PriceTable
from clipedit.domain.uploads import UploadedObject
from clipedit.ports import MediaInspector
from clipedit.usecases.intake import Intake
from clipedit.usecases.submit import check_media

BATCH_SUFFIXES = (".csv", ".jsonl")
PLAN_BATCH_ID = "b-plan"


@dataclass(frozen=True)
class PlannedRow:
    row: int
    status: str  # "ok" or "rejected"
    error_code: str | None = None
    error_message: str | None = None
    estimated_cost_usd: float | None = None
    seconds: float | None = None  # the output length the price is for
    provider: str | None = None
    model: str | None = None
    mode: str | None = None
    video: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "status": self.status, "error_code": self.error_code,
                "error_message": self.error_message, "estimated_cost_usd": self.estimated_cost_usd,
                "seconds": self.seconds, "provider": self.provider, "model": self.model, "mode": self.mode,
                "video": self.video}


@dataclass(frozen=True)
class BatchPlan:
    rows: list[PlannedRow]

    @property
    def total_estimated_cost_usd(self) -> float:
        return float(sum((Decimal(str(r.estimated_cost_usd)) for r in self.rows if r.estimated_cost_usd), Decimal(0)))

    @property
    def rejected(self) -> int:
        return sum(1 for r in self.rows if r.status == "rejected")

    def as_dict(self) -> dict[str, Any]:
        return {"rows": [r.as_dict() for r in self.rows], "total_estimated_cost_usd": self.total_estimated_cost_usd,
                "ok": len(self.rows) - self.rejected, "rejected": self.rejected}


def check_batch_file_name(name: str) -> None:
    if not name.lower().endswith(BATCH_SUFFIXES):
        raise SpecError(f"{name or 'the file'} is not a batch: a catalog is a .csv file (a header line, one row per "
                        "clip) or a .jsonl file (one JSON object per line)", code="INVALID_BATCH_FILE")


def decode_batch(name: str, data: bytes) -> list[str]:
    """The lines of an uploaded catalog; SpecError when it is not a UTF-8 CSV/JSONL text."""
    check_batch_file_name(name)
    if b"\x00" in data[:8192]:
        raise SpecError(f"{name} is a binary file, not a CSV or JSONL text", code="INVALID_BATCH_FILE")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SpecError(f"{name} is not UTF-8 text (byte {error.start}): save it as UTF-8 CSV/JSONL",
                        code="INVALID_BATCH_FILE") from None
    return text.splitlines(keepends=True)


class PlanBatch:
    def __init__(self, *, intake: Intake, inspector: MediaInspector, prices: PriceTable, inbox_bucket: str,
                 max_clip_seconds: int) -> None:
        self._intake = intake
        self._max_clip_seconds = max_clip_seconds
        self._inspector = inspector
        self._prices = prices
        self._inbox_bucket = inbox_bucket

    def __call__(self, name: str, lines: Iterable[str]) -> BatchPlan:
        """SpecError when the file as a whole is unusable (name, header, size); else one row each."""
        check_batch_file_name(name)
        where = UploadedObject(bucket=self._inbox_bucket, key=f"batches/plan/{name}", version_id="plan", etag=None,
                               sequencer=None, size=None)
        rows = self._intake.batch_rows(PLAN_BATCH_ID, where, lines, {}, None)
        return BatchPlan([self._row(fields) for fields in rows])

    def _row(self, fields: dict[str, Any]) -> PlannedRow:
        row = int(fields["batch_row"])
        if fields["status"] == JobStatus.REJECTED.value:
            return PlannedRow(row, "rejected", fields.get("error_code"), fields.get("error_message"))
        job = self._intake.job_from_fields(fields)
        video_ref = job.video_ref or {}
        video = video_ref.get("key") or video_ref.get("url") if isinstance(video_ref, dict) else str(video_ref)
        described = dict(provider=job.provider, model=job.model, mode=job.mode, video=video)
        try:
            checked = check_media(self._inspector, job, max_clip_seconds=self._max_clip_seconds)
        except (MediaRejected, SpecError) as problem:
            return PlannedRow(row, "rejected", problem.code, problem.message, **described)
        seconds = checked.billed_seconds
        cost = self._prices.estimate(job.provider, job.model or "o3", job.mode or "pro", seconds)
        if cost is None:
            return PlannedRow(row, "rejected", "NO_PRICE", f"the price table has no price for {job.provider} "
                              f"{job.model} {job.mode}: add it to the stack's PriceOverrides", **described)
        return PlannedRow(row, "ok", estimated_cost_usd=cost, seconds=round(seconds, 3), **described)
