"""Long clips end to end on the local stack, black-box: a 25 s clip is edited in parts and comes back
as one video of its own length with the original soundtrack; a failed part fails the parent and a
retry pays for that part only; duplicates make nothing twice; bad input is refused unpaid."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest

from local.media import probe
from clipedit.domain.keys import job_id_for
from tests.conftest import prepare_messages_come_back_after, set_knobs
from tests.e2e.test_cli import cli  # noqa: F401  (the command-line fixture)
from tests.e2e.test_platform_variants import write_clip
from tests.integration.test_pipeline import s3_notification

PROMPT = "Give @Video1 a warm grade"
FRAME = 1 / 24


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    # 1280x720 with a 440 Hz tone, 25 s: longer than the model's 10 s, three parts.
    return write_clip(tmp_path_factory.mktemp("long") / "long.mp4", width=1280, height=720, seconds=25.0)


def tasks_for(stack, job_ids) -> list[dict]:
    return [t for t in stack.emulator.tasks() if t["external_task_id"] in set(job_ids)]


def audio_of(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        samples = [f.to_ndarray().mean(axis=0) for f in container.decode(stream)]
    return np.concatenate(samples), rate


def assert_tone_throughout(path: Path, seconds: float) -> None:
    """Every half second of the output carries the source's 440 Hz tone (no gap, no other sound at a seam)."""
    samples, rate = audio_of(path)
    assert abs(len(samples) / rate - seconds) < 0.1
    window = rate // 2
    for start in range(0, len(samples) - window, window):
        chunk = samples[start:start + window]
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk))))
        peak = np.fft.rfftfreq(len(chunk), 1 / rate)[int(np.argmax(spectrum))]
        assert abs(peak - 440) < 5, f"at {start / rate:.1f} s the loudest tone is {peak:.0f} Hz"
        assert np.sqrt(np.mean(chunk ** 2)) > 0.1, f"silence at {start / rate:.1f} s"


# The tests about orchestration (a failed part, duplicates, a killed stitch, the CLI) take
# `emulator_returns_inputs`: lengths, tone, seams and task counts do not need the grade (~5 CPU-s
# saved per 25 s clip). The cut and crossfade tests keep it.


def run_long(client, clip, key, **metadata):
    parent_id = client.upload_clip(clip, key, {"prompt": PROMPT, "mode": "std", "long-clip": "segment", **metadata})
    return parent_id, client.wait_for_job(parent_id, timeout=300)


@pytest.mark.parametrize("seam", ["cut", "crossfade"])
def test_a_25_s_clip_is_edited_in_three_parts_and_stitched_with_its_own_tone(stack, client, long_clip, tmp_path, seam):
    parent_id, parent = run_long(client, long_clip, f"incoming/long/{seam}.mp4", seam=seam)
    assert parent["status"] == "SUCCEEDED", (parent.get("error_code"), parent.get("error_message"))
    assert parent["parts_total"] == 3 and parent["parts_succeeded"] == 3 and parent["parts_failed"] == 0
    parts = [client.job(job_id) for job_id in parent["part_job_ids"]]
    assert [p["status"] for p in parts] == ["SUCCEEDED"] * 3 and {p["parent_id"] for p in parts} == {parent_id}
    assert len(tasks_for(stack, parent["part_job_ids"])) == 3 and tasks_for(stack, [parent_id]) == []
    out = client.download_output(parent, tmp_path / f"{seam}.mp4")
    facts = probe(out)
    assert abs(facts["duration_seconds"] - 25.0) <= FRAME + 1e-6, facts
    assert (facts["width"], facts["height"]) == (1280, 720) and facts["has_audio"]
    assert_tone_throughout(out, 25.0)
    assert float(parent["provider_units"]) == pytest.approx(sum(float(p["provider_units"]) for p in parts))
    if seam == "crossfade":
        windows = parent["stitch_plan"]["parts"]
        assert windows[0]["end"] - windows[1]["start"] == pytest.approx(0.5)
    # The original is untouched.
    head = client.s3.head_object(Bucket=stack.info["inbox_bucket"], Key=f"incoming/long/{seam}.mp4")
    assert head["ContentLength"] == long_clip.stat().st_size


def test_a_failed_part_fails_the_parent_and_retry_pays_for_that_part_only(stack, client, emulator, cli, long_clip,
                                                                        tmp_path, emulator_returns_inputs):
    # The account takes one task at a time and fails it: the first part created fails, the others
    # wait (Kling 1303, backoff) until the knobs are back to normal.
    set_knobs(emulator, concurrency=1, fail_rate=1.0, processing_seconds=3.0)
    parent_id = client.upload_clip(long_clip, "incoming/long/fail.mp4", {"prompt": PROMPT, "mode": "std",
                                                                         "long-clip": "segment"})
    try:
        deadline = time.monotonic() + 120
        while not tasks_for(stack, (client.job(parent_id) or {}).get("part_job_ids") or []):
            assert time.monotonic() < deadline, "no part reached the provider"
            time.sleep(0.1)
    finally:
        set_knobs(emulator, concurrency=5, fail_rate=0.0, processing_seconds=0.5)
    parent = client.wait_for_job(parent_id, timeout=300)
    assert parent["status"] == "FAILED" and parent["error_code"] == "PART_FAILED"
    parts = [client.job(job_id) for job_id in parent["part_job_ids"]]
    (failed,) = [p for p in parts if p["status"] == "FAILED"]
    assert failed["job_id"] in parent["error_message"] and failed["error_code"] in parent["error_message"]
    assert (parent["parts_succeeded"], parent["parts_failed"]) == (2, 1)
    before = len(stack.emulator.tasks())

    code, out, err = cli("retry", parent_id, "--json")
    assert code == 0, err
    retried = client.wait_for_job(json.loads(out)["job_id"], timeout=300)
    assert retried["status"] == "SUCCEEDED", (retried.get("error_code"), retried.get("error_message"))
    assert len(stack.emulator.tasks()) == before + 1  # the failed part only
    kept = [a for a, b in zip(retried["part_job_ids"], parent["part_job_ids"]) if a == b]
    assert len(kept) == 2 and failed["job_id"] not in retried["part_job_ids"]
    out_path = client.download_output(retried, tmp_path / "retried.mp4")
    assert abs(probe(out_path)["duration_seconds"] - 25.0) <= FRAME + 1e-6
    assert_tone_throughout(out_path, 25.0)


def test_the_same_upload_delivered_three_times_makes_one_parent_and_three_parts(stack, client, cli, long_clip,
                                                                                emulator_returns_inputs):
    key = "incoming/long/dup.mp4"
    with open(long_clip, "rb") as body:
        put = client.s3.put_object(Bucket=stack.info["inbox_bucket"], Key=key, Body=body,
                                   Metadata={"prompt": PROMPT, "mode": "std", "long-clip": "segment"})
    message = s3_notification(stack.info["inbox_bucket"], key, put["VersionId"], long_clip.stat().st_size)
    for _ in range(2):  # S3 already sent one; SQS at-least-once delivery sends two more
        client.sqs.send_message(QueueUrl=stack.info["intake_queue_url"], MessageBody=message)
    parent = client.wait_for_job(job_id_for(stack.info["inbox_bucket"], key, put["VersionId"]), timeout=300)
    assert parent["status"] == "SUCCEEDED", (parent.get("error_code"), parent.get("error_message"))
    jobs = client.jobs_for_source(key)
    assert len(jobs) == 4 and len([j for j in jobs if j.get("parent_id") == parent["job_id"]]) == 3
    assert len(tasks_for(stack, parent["part_job_ids"])) == 3
    # The command line shows the parts under their parent.
    code, out, _ = cli("status", parent["job_id"], "--json")
    view = json.loads(out)
    assert code == 0 and [p["job_id"] for p in view["parts"]] == parent["part_job_ids"]
    assert [p["status"] for p in view["parts"]] == ["SUCCEEDED"] * 3 and view["parts_succeeded"] == 3
    code, out, _ = cli("list", "--limit", "100")
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if parent["job_id"] in line and "└" not in line)
    for offset, part_id in enumerate(parent["part_job_ids"], 1):
        assert part_id in lines[row + offset] and "└" in lines[row + offset] and f"part {offset}/3" in lines[row + offset]


def test_bad_input_gets_its_code_and_spends_nothing(stack, client, long_clip, tmp_path):
    before = len(stack.emulator.tasks())
    too_long = write_clip(tmp_path / "too-long.mp4", width=1280, height=720, seconds=125.0, audio=False)
    client.upload_clip(too_long, "incoming/long/too-long.mp4", {"prompt": PROMPT, "long-clip": "segment"})
    (job,) = client.wait_for_source("incoming/long/too-long.mp4", timeout=120)
    assert (job["status"], job["error_code"]) == ("REJECTED", "CLIP_OVER_MAX_SECONDS"), job.get("error_message")
    assert "120 s" in job["error_message"]
    cases = {
        "incoming/long/default.mp4": ({}, "CLIP_TOO_LONG"),
        "incoming/long/badchoice.mp4": ({"long-clip": "split"}, "INVALID_LONG_CLIP"),
        "incoming/long/badseam.mp4": ({"long-clip": "segment", "seam": "wipe"}, "INVALID_SEAM"),
        "incoming/long/badoverlap.mp4": ({"long-clip": "segment", "seam": "crossfade", "overlap": "5"},
                                         "INVALID_OVERLAP"),
        "incoming/long/shorttrim.mp4": ({"long-clip": "segment", "trim": "23-25.5"}, "TRIM_TOO_SHORT"),
    }
    for key, (metadata, _) in cases.items():
        client.upload_clip(long_clip, key, {"prompt": PROMPT, **metadata})
    for key, (_, code) in cases.items():
        (job,) = client.wait_for_source(key, timeout=120)
        assert (job["status"], job["error_code"]) == ("REJECTED", code), (key, job.get("error_message"))
    (default,) = client.jobs_for_source("incoming/long/default.mp4")
    assert "long_clip: segment" in default["error_message"] and "units" in default["error_message"]
    assert len(stack.emulator.tasks()) == before


def test_dry_run_prints_the_plan_and_submits_nothing(stack, client, cli, long_clip):
    before_tasks = len(stack.emulator.tasks())
    before_objects = client.s3.list_objects_v2(Bucket=stack.info["inbox_bucket"]).get("KeyCount", 0)
    code, out, err = cli("submit", str(long_clip), "--prompt", PROMPT, "--mode", "std", "--long-clip", "segment",
                         "--seam", "crossfade", "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["submitted"] is False and len(plan["parts"]) == 3 and len(plan["boundaries"]) == 2
    assert plan["seam"] == "crossfade" and plan["overlap"] == 0.5 and plan["kept_seconds"] == pytest.approx(25.0, abs=0.05)
    assert all(3.0 <= part["seconds"] <= 10.0 for part in plan["parts"])
    assert plan["estimate"]["parts"] == 3 and plan["estimate"]["units"] > 0
    code, out, _ = cli("submit", str(long_clip), "--prompt", PROMPT, "--dry-run")
    assert code == 2 and "CLIP_TOO_LONG" in out and "long_clip: segment" in out
    assert len(stack.emulator.tasks()) == before_tasks
    assert client.s3.list_objects_v2(Bucket=stack.info["inbox_bucket"]).get("KeyCount", 0) == before_objects


def test_a_stitch_killed_mid_way_is_retried_without_editing_any_part_again(stack, client, long_clip, tmp_path,
                                                                           emulator_returns_inputs):
    import dataclasses
    import inspect

    from local.runtime import SimulatedCrash

    container = inspect.unwrap(stack.runner._handler(stack.prepare_function)).__globals__["container"]
    stitch = container.stitch_long_clip
    real_media, real_settings, crashes = stitch._media, stitch._settings, []

    class DiesOnce:
        def cut_candidates(self, path):
            return real_media.cut_candidates(path)

        def stitch(self, part_paths, source_path, target_path, plan):
            if not crashes:
                crashes.append(plan)
                Path(target_path).write_bytes(b"half a video")  # what a killed process leaves behind
                raise SimulatedCrash("stitch killed mid-encode (test)")
            return real_media.stitch(part_paths, source_path, target_path, plan)

    stitch._media = DiesOnce()
    stitch._settings = dataclasses.replace(real_settings, stitch_lease_seconds=3)  # 960 s in AWS
    try:
        # 10 s: longer than a part's prepare or the stitch takes here, far shorter than the stack's 120 s.
        with prepare_messages_come_back_after(stack, client.sqs, seconds=10):
            parent_id, parent = run_long(client, long_clip, "incoming/long/crash.mp4")
    finally:
        stitch._media, stitch._settings = real_media, real_settings
    assert len(crashes) == 1
    assert parent["status"] == "SUCCEEDED", (parent.get("error_code"), parent.get("error_message"))
    assert len(tasks_for(stack, parent["part_job_ids"])) == 3  # no part edited twice
    out = client.download_output(parent, tmp_path / "crash.mp4")
    assert abs(probe(out)["duration_seconds"] - 25.0) <= FRAME + 1e-6
    versions = client.s3.list_object_versions(Bucket=parent["output_bucket"], Prefix=parent["output_key"])
    assert len([v for v in versions.get("Versions", []) if v["Key"] == parent["output_key"]]) == 1


def test_clipedit_submit_with_long_clip_options_edits_in_parts(stack, cli, long_clip, tmp_path, emulator_returns_inputs):
    # The command line goes through a manifest (not metadata): the fields must survive it.
    code, out, err = cli("submit", str(long_clip), "--prompt", PROMPT, "--mode", "std", "--long-clip", "segment",
                         "--seam", "crossfade", "--overlap", "0.6", "--watch", "--json", "--timeout", "300",
                         timeout=360)
    assert code == 0, err
    (job,) = json.loads(out[out.rindex("\n{") + 1:] if "\n{" in out else out)["jobs"]
    code, out, _ = cli("status", job["job_id"], "--json")
    parent = json.loads(out)
    assert parent["status"] == "SUCCEEDED" and parent["parts_total"] == 3 and len(parent["parts"]) == 3
    assert parent["stitch_plan"]["seam"] == "crossfade" and parent["stitch_plan"]["overlap"] == 0.6
