"""One upload into the inbox, as an S3 ObjectCreated notification describes it.

Its own module (not in ``usecases.intake``, which acts on it) so that reading notifications
(``adapters.s3_notifications``) does not import the intake use case and the spec parsing behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from clipedit.domain.job import ObjectRef


@dataclass(frozen=True)
class UploadedObject:
    """What an S3 ObjectCreated notification tells us about one upload."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    sequencer: str | None
    size: int | None

    @property
    def version(self) -> str:
        # A versioned bucket names every upload; otherwise ETag + sequencer still tell two uploads
        # of the same key apart while a redelivered event keeps both.
        return self.version_id or f"{self.etag}:{self.sequencer}"

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.bucket, self.key, self.version_id)
