"""A person's verdict on an edited clip: approved or rejected, with an optional note.

Only a SUCCEEDED job has an output to judge. A review can be changed (the last one stands); each
one is recorded on the job (``review_status``, ``review_note``, ``reviewed_at``, ``reviewed_by``)
and announced with a ``Job Reviewed`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clipedit.domain.errors import ClipeditError

MAX_REVIEW_NOTE_CHARS = 2000
MAX_REVIEW_BODY_BYTES = 16 * 1024
REVIEW_FIELDS = frozenset({"review_status", "review_note"})


class ReviewStatus(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class InvalidReview(ClipeditError):
    code = "INVALID_REVIEW"


@dataclass(frozen=True)
class Review:
    status: ReviewStatus
    note: str | None = None


def parse_review(document: Any) -> Review:
    """``{"review_status": "approved"|"rejected", "review_note": "..."}`` -> Review, or InvalidReview
    (code INVALID_REVIEW or REVIEW_NOTE_TOO_LONG) saying what is wrong."""
    if not isinstance(document, dict):
        raise InvalidReview('a review is a JSON object: {"review_status": "approved" or "rejected", '
                            '"review_note": "optional words"}')
    unknown = sorted(set(document) - REVIEW_FIELDS)
    if unknown:
        raise InvalidReview(f"unknown field(s) {', '.join(unknown)}; a review has review_status and review_note")
    raw_status = document.get("review_status")
    try:
        status = ReviewStatus(str(raw_status).strip().lower()) if isinstance(raw_status, str) else None
    except ValueError:
        status = None
    if status is None:
        raise InvalidReview(f"review_status must be approved or rejected; got {raw_status!r}")
    note = document.get("review_note")
    if note is not None and not isinstance(note, str):
        raise InvalidReview("review_note must be a string")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_REVIEW_NOTE_CHARS:
        raise InvalidReview(f"review_note is {len(note)} characters; at most {MAX_REVIEW_NOTE_CHARS}",
                            code="REVIEW_NOTE_TOO_LONG")
    return Review(status, note)
