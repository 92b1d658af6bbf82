"""The media port's adapter (PyAV, clipedit_media): what cannot be fixed by trying again becomes a
specific code on the parent instead of a request that retries until the dead-letter queue."""

from __future__ import annotations

import pytest

from clipedit.adapters.long_clip_media import PyAVLongClipMedia
from clipedit.domain.errors import MediaRejected
from clipedit.domain.segments import plan_segments


def test_a_file_that_is_not_a_video_has_no_cut_points(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(MediaRejected) as raised:
        PyAVLongClipMedia().cut_candidates(str(path))
    assert raised.value.code == "CLIP_UNDECODABLE"


def test_missing_parts_fail_the_stitch_with_its_code(tmp_path):
    plan = plan_segments(25.0)
    parts = [str(tmp_path / f"p{i}.mp4") for i in range(len(plan.parts))]
    with pytest.raises(MediaRejected) as raised:
        PyAVLongClipMedia().stitch(parts, str(tmp_path / "source.mp4"), str(tmp_path / "out.mp4"), plan)
    assert raised.value.code == "STITCH_FAILED" and "p0.mp4" in raised.value.message
    assert not (tmp_path / "out.mp4").exists()
