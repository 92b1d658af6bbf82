"""The prepare use case's `ClipTransformer` port, served by PyAV (`clipedit_media.prepare`).

A clip the probe accepted can still fail to decode (a broken mdat, an exotic codec): that is the
user's input, so it becomes MediaRejected (REJECTED with CLIP_UNDECODABLE), not a retry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import av

from clipedit.domain.errors import MediaRejected
from clipedit.domain.framing import PreparePlan
from clipedit_media.prepare import prepare_clip


class PyAVTransformer:
    def prepare(self, source_path: str, target_path: str, plan: PreparePlan) -> dict[str, Any]:
        try:
            result = prepare_clip(source_path, target_path, plan)
        except (av.error.InvalidDataError, av.error.DecoderNotFoundError, av.error.PatchWelcomeError) as error:
            raise MediaRejected(f"the clip could not be decoded for preparing: {error}; re-export it as "
                                "H.264 MP4 and upload it again", code="CLIP_UNDECODABLE") from None
        facts = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
        return {k: v for k, v in facts.items() if isinstance(v, (int, float, str, bool, list, dict))}
