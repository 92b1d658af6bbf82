"""The prepare use case's `ClipTransformer` port, served by PyAV (`clipedit_media.prepare`).

A clip the probe accepted can still fail to decode (a broken mdat, an exotic codec): that is the
user's input, so it becomes MediaRejected (REJECTED with CLIP_UNDECODABLE), not a retry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from clipedit.domain.errors import MediaRejected
from clipedit.domain.framing import PreparePlan
from clipedit_media.prepare import PrepareError, prepare_clip


class PyAVTransformer:
    def prepare(self, source_path: str, target_path: str, plan: PreparePlan) -> dict[str, Any]:
        try:
            result = prepare_clip(source_path, target_path, plan)
        except PrepareError as error:
            raise MediaRejected(f"{error}; re-export the clip as H.264 MP4 and upload it again",
                                code="CLIP_UNDECODABLE") from None
        facts = dataclasses.asdict(result)
        # Stored on the job record: plain JSON values only (tuples become lists).
        return {k: list(v) if isinstance(v, tuple) else v for k, v in facts.items() if v is not None}
