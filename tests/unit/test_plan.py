"""PlanBatch on in-memory ports: rows judged by intake's expansion and submit's media checks, priced
by the table (trim and reference-mode lengths), and nothing created or queued."""

from __future__ import annotations

import pytest

from clipedit.domain.errors import MediaRejected, SpecError
from clipedit.domain.pricing import PriceTable
from clipedit.usecases.plan import PlanBatch, decode_batch
from tests.unit.test_submit import World

PROMPT = "Warm up @Video1. Keep the motion identical."


def planner(world: World, prices: PriceTable | None = None) -> PlanBatch:
    return PlanBatch(intake=world.intake, inspector=world.inspector, prices=prices or PriceTable(), inbox_bucket="inbox",
                     max_clip_seconds=120)


def test_rows_are_checked_priced_and_nothing_is_created():
    world = World()
    world.inspector.videos["s3://inbox/media/short.mp4"] = MediaRejected("2 s is too short", code="CLIP_TOO_SHORT")
    lines = decode_batch("c.csv", (
        "video_url,prompt,mode,provider,trim,sku\n"
        f"media/a.mp4,{PROMPT},pro,kling,,A\n"  # 5 s (the fake clip) x 0.168
        f"media/a.mp4,{PROMPT},std,fal,0.5-4.1,B\n"  # trimmed to 3.6 s -> 4 s x 0.252
        f"media/short.mp4,{PROMPT},pro,kling,,C\n"
        f"media/a.mp4,,pro,kling,,D\n").encode())
    plan = planner(world)("c.csv", lines)
    assert [r.status for r in plan.rows] == ["ok", "ok", "rejected", "rejected"]
    assert plan.rows[0].estimated_cost_usd == pytest.approx(0.84) and plan.rows[0].seconds == 5.0
    assert plan.rows[1].estimated_cost_usd == pytest.approx(1.008) and plan.rows[1].seconds == pytest.approx(3.6)
    assert (plan.rows[2].error_code, plan.rows[3].error_code) == ("CLIP_TOO_SHORT", "MISSING_PROMPT")
    assert plan.as_dict()["total_estimated_cost_usd"] == pytest.approx(0.84 + 1.008)
    assert set(plan.as_dict()["rows"][0]) >= {"row", "status", "error_code", "estimated_cost_usd"}
    assert world.jobs.items == {} and world.queue.sent == [] and world.batches.batches == {}


def test_reference_mode_is_priced_by_the_shot_it_makes_and_overrides_apply():
    world = World()
    lines = [f'{{"video_url": "media/a.mp4", "prompt": "{PROMPT}", "mode": "pro", "video_mode": "reference", '
             '"aspect_ratio": "9:16", "duration": 8}\n']
    plan = planner(world, PriceTable({"kling": {"o3": {"pro": 0.2}}}))("c.jsonl", lines)
    (row,) = plan.rows
    assert row.status == "ok", row
    assert (row.seconds, row.estimated_cost_usd) == (8.0, pytest.approx(1.6))


@pytest.mark.parametrize("name, data, fragment", [
    ("notes.txt", b"video_url,prompt\n", ".csv file"),
    ("c.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    ("c.csv", "prompt\n\u00e9".encode("latin-1"), "not UTF-8"),
])
def test_a_file_that_is_not_a_catalog_is_refused(name, data, fragment):
    with pytest.raises(SpecError, match=fragment) as caught:
        planner(World())(name, decode_batch(name, data))
    assert caught.value.code == "INVALID_BATCH_FILE"


def test_a_long_clip_is_priced_by_every_part_it_will_be_edited_in():
    world = World()
    world.inspector.videos["s3://inbox/media/long.mp4"] = {"duration_seconds": 25.0}
    lines = decode_batch("c.csv", (
        "video_url,prompt,mode,long_clip\n"
        f"media/long.mp4,{PROMPT},pro,segment\n"
        f"media/long.mp4,{PROMPT},pro,reject\n").encode())
    plan = planner(world, PriceTable({"kling": {"o3": {"pro": 0.1}}}))("c.csv", lines)
    segmented, refused = plan.rows
    # 25 s in the fewest parts of 3-10 s: three parts of 8.33 s, each billed as 8 s (the estimate
    # submit records on the parent), not the 25 s of one clip.
    assert segmented.status == "ok", segmented
    assert (segmented.seconds, segmented.estimated_cost_usd) == (24.0, pytest.approx(2.4))
    assert (refused.status, refused.error_code) == ("rejected", "CLIP_TOO_LONG")
