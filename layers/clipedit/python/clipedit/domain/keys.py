"""Deterministic names: job ids from object versions, output keys from input keys."""

from __future__ import annotations

import hashlib
import posixpath

VIDEO_SUFFIXES = (".mp4", ".mov")


def is_video_key(key: str) -> bool:
    """mp4/mov in any letter case (S3 suffix filters are case-sensitive, so this is checked here)."""
    return key.lower().endswith(VIDEO_SUFFIXES)


def job_id_for(bucket: str, key: str, version: str) -> str:
    """Same object version -> same job id; a new upload at the same key -> a new job.

    ``version`` is the S3 version id (the inbox is versioned) or, failing that, the ETag plus the
    event sequencer. The id doubles as Kling's ``external_task_id``, which must be unique per account.
    """
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()
    return f"j-{digest[:32]}"


def output_key_for(input_key: str, *, incoming_prefix: str, output_prefix: str) -> str:
    """``incoming/shoot/My Clip.MOV`` -> ``edited/shoot/My Clip.mp4`` (the provider returns mp4).

    Predictable from the input key so users find their result without reading the job table.
    A later upload to the same input key writes a new version of the same output key.
    """
    relative = input_key[len(incoming_prefix):] if input_key.startswith(incoming_prefix) else input_key
    stem, _ext = posixpath.splitext(relative)
    return f"{output_prefix}{stem}.mp4"


def retry_job_id(root_job_id: str, attempt: int) -> str:
    """The job id of retry ``attempt`` (1, 2, ...) of a job: the same retry always gets the same
    id (so asking twice creates one job), and it is a new provider ``external_task_id``."""
    digest = hashlib.sha256(f"{root_job_id}\nretry\n{attempt}".encode()).hexdigest()
    return f"j-{digest[:32]}"
