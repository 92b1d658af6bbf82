"""Manifests, presets, variants, batches and elements through intake + submit (in-memory ports)."""

from __future__ import annotations

import json

import pytest

from clipedit.domain.batch import parse_csv, parse_jsonl
from clipedit.domain.errors import SpecError
from clipedit.domain.job import JobStatus
from clipedit.domain.manifest import parse_manifest, parse_media_ref, resolve, merge_layers
from clipedit.domain.spec import SpecDefaults
from tests.fakes import FakeElementProvider
from tests.unit.test_submit import BUCKET, World


def put_json(world, key, value):
    world.storage.put(BUCKET, key, json.dumps(value).encode())


def jobs_by_variant(world):
    return {job.variant: job for job in world.jobs.items.values()}


# --- references and precedence ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [("http://example.com/a.png", "INVALID_URL"), ("file:///etc/passwd", "INVALID_URL"),
     ("s3://someone-else/a.png", "BUCKET_NOT_ALLOWED"), ("../secrets/a.png", "INVALID_URL"),
     ("refs/\x00a.png", "INVALID_URL"), ("", "INVALID_URL"), ("ftp://x/y", "INVALID_URL")],
)
def test_references_outside_https_and_the_inbox_are_refused(value, code):
    with pytest.raises(SpecError) as info:
        parse_media_ref(value, field_name="image_urls[0]", inbox_bucket=BUCKET)
    assert info.value.code == code


def test_reference_forms():
    assert parse_media_ref("https://cdn.example/a.png", field_name="f", inbox_bucket=BUCKET).url
    assert parse_media_ref("s3://inbox/refs/a.png", field_name="f", inbox_bucket=BUCKET).key == "refs/a.png"
    ref = parse_media_ref("refs/a b.png", field_name="f", inbox_bucket=BUCKET)
    assert (ref.bucket, ref.key) == (BUCKET, "refs/a b.png")
    assert parse_media_ref("s3://shared/a.png", field_name="f", inbox_bucket=BUCKET,
                           allowed_buckets=frozenset({"shared"})).bucket == "shared"


def test_precedence_defaults_preset_manifest_variant():
    preset = {"mode": "std", "keep_audio": False, "tags": {"team": "a", "season": "x"}, "prompt": "preset prompt"}
    manifest = {"mode": "pro", "tags": {"season": "spring"}, "video_url": "media/a.mp4"}
    variant = {"prompt": "variant prompt", "tags": {"platform": "tiktok"}, "variant": "tiktok"}
    spec = resolve(merge_layers(preset, manifest, variant), SpecDefaults(), inbox_bucket=BUCKET)
    assert (spec.prompt, spec.mode.value, spec.keep_audio, spec.model.value) == ("variant prompt", "pro", False, "o3")
    assert spec.tags == {"team": "a", "season": "spring", "platform": "tiktok"}


@pytest.mark.parametrize(
    ("manifest", "code"),
    [({"video_url": "v.mp4", "prompt": "p", "colour": "red"}, "UNKNOWN_FIELD"),
     ({"video_url": "v.mp4", "prompt": 5}, "INVALID_TYPE"),
     ({"video_url": "v.mp4", "prompt": "p", "keep_audio": "yes"}, "INVALID_TYPE"),
     ({"video_url": "v.mp4", "prompt": "p", "elements": [{"reference_image_urls": ["a.png"]}]}, "ELEMENT_WITHOUT_FRONTAL"),
     ({"video_url": "v.mp4", "prompt": "p", "elements": [{"frontal_image_url": "f.png",
                                                           "reference_image_urls": ["1", "2", "3", "4"]}]}, "ELEMENT_REFERENCES"),
     ({"video_url": "v.mp4", "prompt": "p", "variants": [{"name": "a"}, {"name": "a"}]}, "INVALID_VARIANTS"),
     ({"video_url": "v.mp4", "prompt": "p", "variants": [{"name": "bad name!"}]}, "INVALID_VARIANTS")],
)
def test_manifest_shape_errors(manifest, code):
    with pytest.raises(SpecError) as info:
        parse_manifest(manifest)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("layer", "code"),
    [({"video_url": "v.mp4", "prompt": "p", "image_urls": ["1.png", "2.png", "3.png", "4.png", "5.png"]}, "TOO_MANY_REFERENCES"),
     ({"video_url": "v.mp4", "prompt": "use @Image3", "image_urls": ["1.png", "2.png"]}, "UNKNOWN_REFERENCE"),
     ({"video_url": "v.mp4", "prompt": "use @Element2", "elements": [{"frontal_image_url": "f.png", "reference_image_urls": ["r.png"]}]}, "UNKNOWN_REFERENCE"),
     ({"video_url": "v.mp4", "prompt": "p", "mode": "ultra"}, "INVALID_MODE"),
     ({"video_url": "v.mp4", "prompt": "p", "model": "o9"}, "INVALID_MODEL"),
     ({"prompt": "p"}, "MISSING_VIDEO"),
     ({"video_url": "v.mp4", "prompt": "Product: {title}"}, "UNKNOWN_PLACEHOLDER")],
)
def test_resolution_errors(layer, code):
    with pytest.raises(SpecError) as info:
        resolve(parse_manifest(layer), SpecDefaults(), inbox_bucket=BUCKET)
    assert info.value.code == code


# --- intake paths -------------------------------------------------------------------------------


def test_folder_preset_applies_to_clips_without_a_prompt():
    world = World()
    put_json(world, "presets/beach.json", {"prompt": "Change the background of @Video1 to a beach", "mode": "std"})
    (outcome,) = world.upload(key="incoming/beach/a.mp4", metadata={})
    job = world.jobs.get(outcome.job_id)
    assert job.status == JobStatus.SUBMITTED and job.preset == "beach" and job.mode == "std"
    assert world.provider.requests[0].prompt == "Change the background of @Video1 to a beach"


def test_default_preset_then_rejection():
    world = World(default_preset="house")
    put_json(world, "presets/house.json", {"prompt": "house style"})
    world.upload(key="incoming/a.mp4", metadata={})
    assert next(iter(world.jobs.items.values())).prompt == "house style"


def test_metadata_spec_manifest_and_preset_variants_make_one_job_each():
    world = World()
    put_json(world, "presets/platforms.json", {"variants": [
        {"name": "wide", "prompt": "Relight @Video1 for YouTube"},
        {"name": "tall", "prompt": "Relight @Video1 for TikTok", "mode": "std"}]})
    outcomes = world.upload(key="incoming/promo.mp4", metadata={"preset": "platforms"})
    assert len(outcomes) == 2 and len(world.queue.sent) == 2  # several jobs fan out through the queue
    world.drain()
    jobs = jobs_by_variant(world)
    assert set(jobs) == {"wide", "tall"}
    assert jobs["tall"].mode == "std" and jobs["wide"].mode == "pro"
    assert jobs["tall"].planned_output_key == "edited/promo.tall.mp4"
    assert all(job.status == JobStatus.SUBMITTED for job in jobs.values())


def test_manifest_with_images_and_output_key_template():
    world = World()
    put_json(world, "jobs/spring/sku1.json", {
        "video_url": "media/sku1.mp4", "prompt": "Put the jacket from @Image1 on the model in @Video1",
        "image_urls": ["refs/jacket.png"], "tags": {"sku": "SKU-1"},
        "output_key": "catalog/{sku}/{stem}-{job_id}.mp4"})
    (outcome,) = world.upload(key="jobs/spring/sku1.json", metadata={}, body=world.storage.objects[(BUCKET, "jobs/spring/sku1.json")]["body"])
    job = world.jobs.get(outcome.job_id)
    assert job.status == JobStatus.SUBMITTED
    assert job.video_ref == {"bucket": BUCKET, "key": "media/sku1.mp4"}
    assert job.planned_output_key == f"edited/catalog/SKU-1/sku1-{job.job_id}.mp4"
    request = world.provider.requests[0]
    assert request.image_urls == ("https://presigned.example/inbox/refs/jacket.png?ttl=900",)
    assert "s3://inbox/refs/jacket.png" in world.inspector.probed  # the image was checked first


def test_unreadable_reference_image_rejects_the_job():
    from clipedit.domain.errors import MediaRejected

    world = World()
    world.inspector.images["s3://inbox/refs/missing.png"] = MediaRejected("404", code="REFERENCE_UNREADABLE")
    put_json(world, "jobs/a.json", {"video_url": "media/a.mp4", "prompt": "p", "image_urls": ["refs/missing.png"]})
    world.upload(key="jobs/a.json", metadata={}, body=world.storage.objects[(BUCKET, "jobs/a.json")]["body"])
    (job,) = world.jobs.items.values()
    assert (job.status, job.error_code) == (JobStatus.REJECTED, "REFERENCE_UNREADABLE")
    assert "refs/missing.png" in job.error_message and world.provider.requests == []


def test_malformed_manifest_json_is_rejected_with_its_position():
    world = World()
    world.upload(key="jobs/bad.json", metadata={}, body=b'{"prompt": "p",\n "video_url": }')
    (job,) = world.jobs.items.values()
    assert job.error_code == "INVALID_JSON" and "line 2" in job.error_message


def test_deeply_nested_manifest_is_refused():
    world = World()
    world.upload(key="jobs/deep.json", metadata={}, body=("[" * 50 + "]" * 50).encode())
    (job,) = world.jobs.items.values()
    assert job.error_code == "MANIFEST_TOO_DEEP"


def test_manifest_list_makes_a_job_per_entry_and_keeps_bad_entries_as_rejections():
    world = World()
    body = json.dumps([{"video_url": "media/a.mp4", "prompt": "p"}, {"video_url": "media/b.mp4"},
                       {"video_url": "media/c.mp4", "prompt": "p", "image_urls": ["1", "2", "3", "4", "5"]}]).encode()
    world.upload(key="jobs/list.json", metadata={}, body=body)
    world.drain()
    statuses = sorted((j.status.value, j.error_code or "") for j in world.jobs.items.values())
    assert statuses == [("REJECTED", "MISSING_PROMPT"), ("REJECTED", "TOO_MANY_REFERENCES"), ("SUBMITTED", "")]


# --- batches ------------------------------------------------------------------------------------


CSV = (
    "video_url,title,sku,image_urls,mode\n"
    "media/1.mp4,Red shoe,S1,refs/a.png|refs/b.png,std\n"
    "media/2.mp4,Blue hat,S2,,\n"
    "media/3.mp4,Bad,S3,,turbo\n"
)


def test_csv_rows_parse_with_line_numbers():
    rows = list(parse_csv(CSV.splitlines(keepends=True)))
    assert [r.row for r in rows] == [1, 2, 3] and rows[0].layer["image_urls"] == ["refs/a.png", "refs/b.png"]
    assert rows[0].variables == {"title": "Red shoe", "sku": "S1"}
    with pytest.raises(SpecError) as info:
        list(parse_csv(['a,b\n', '"unterminated,1\n']))
    assert info.value.code == "INVALID_BATCH" and "line" in info.value.message


def test_jsonl_bad_line_is_a_row_error_not_a_batch_error():
    rows = list(parse_jsonl(['{"video_url": "a.mp4", "prompt": "p"}\n', "{oops\n", "[1]\n"]))
    assert rows[0].error is None and rows[1].error.code == "INVALID_JSON" and "line 2" in rows[1].error.message
    assert rows[2].error.code == "INVALID_BATCH"


def test_batch_fans_out_counts_progress_and_writes_results_when_done():
    world = World()
    world.storage.put(BUCKET, "batches/spring.csv", CSV.encode(),
                      {"prompt": "Place the product on a white studio background. Product: {title}"})
    world.upload(key="batches/spring.csv", body=CSV.encode())
    (batch,) = world.batches.batches.values()
    assert batch["total"] == 3 and batch["counts"] == {"RECEIVED": 2, "REJECTED": 1}
    world.drain()  # expand the chunk, then submit each job
    jobs = sorted(world.jobs.items.values(), key=lambda j: j.batch_row)
    assert [j.status.value for j in jobs] == ["SUBMITTED", "SUBMITTED", "REJECTED"]
    assert jobs[0].prompt == "Place the product on a white studio background. Product: Red shoe"
    assert jobs[0].tags == {"title": "Red shoe", "sku": "S1"} and jobs[0].mode == "std"
    assert jobs[2].error_code == "INVALID_MODE" and jobs[2].error_message.startswith("line 4:")
    assert world.batches.batches[batch["batch_id"]]["counts"]["SUBMITTED"] == 2
    assert ("inbox", "batches/spring.results.csv") not in world.storage.objects
    # Finish the two submitted jobs (as finalize does) and the batch completes.
    from clipedit.usecases.finalize import FinalizeJob, FinalizeSettings
    from clipedit.ports import TaskState
    from tests.fakes import FakeFetcher

    fetcher = FakeFetcher({"https://cdn/x.mp4": b"video"})
    finalize = FinalizeJob(jobs=world.jobs, storage=world.storage, provider=world.provider, fetcher=fetcher,
                           recorder=world.submit_job._recorder, clock=world.clock,
                           settings=FinalizeSettings(outputs_bucket="out", incoming_prefix="incoming/", output_prefix="edited/"))
    for job in jobs[:2]:
        world.provider.set_state(job.provider_task_id, TaskState.SUCCEEDED, video_url="https://cdn/x.mp4")
        finalize.on_poll(job.job_id)
    results = world.storage.objects[(BUCKET, "batches/spring.results.csv")]["body"].decode().splitlines()
    assert results[0] == "row,job_id,status,output_key,error_code,error"
    assert results[1].startswith(f"1,{jobs[0].job_id},SUCCEEDED,edited/media/1.mp4")
    assert results[3].startswith(f"3,{jobs[2].job_id},REJECTED,,INVALID_MODE")
    completed = [d for t, d in world.events.published if t == "Batch Completed"]
    assert completed and completed[0]["counts"]["SUCCEEDED"] == 2 and completed[0]["total"] == 3


def test_a_batch_redelivered_is_not_expanded_twice():
    world = World()
    world.storage.put(BUCKET, "batches/b.jsonl", b'{"video_url": "media/1.mp4", "prompt": "p"}\n')
    world.upload(key="batches/b.jsonl", body=b"x")
    world.drain()
    world.upload(key="batches/b.jsonl", body=b"x")
    world.drain()
    assert len(world.jobs.items) == 1 and len(world.provider.tasks) == 1


def test_ten_thousand_rows_expand_in_chunks():
    world = World()
    lines = "".join(f'{{"video_url": "media/{i}.mp4", "prompt": "p {i}"}}\n' for i in range(10_000))
    world.storage.put(BUCKET, "batches/big.jsonl", lines.encode())
    world.upload(key="batches/big.jsonl", body=b"x")
    assert len(world.queue.sent) == 100 and all(len(m["jobs"]) == 100 for m in world.queue.sent)
    assert all(len(json.dumps(m)) < 250 * 1024 for m in world.queue.sent)  # fits an SQS message


def test_the_results_file_does_not_start_a_batch():
    world = World()
    assert world.upload(key="batches/spring.results.csv")[0].status == "IGNORED"


# --- elements -----------------------------------------------------------------------------------


def test_elements_are_created_once_and_reused_by_content():
    provider = FakeElementProvider()
    world = World(provider=provider)
    manifest = {"video_url": "media/a.mp4", "prompt": "@Element1 waves in @Video1",
                "elements": [{"frontal_image_url": "refs/mascot.png", "reference_image_urls": ["refs/mascot-side.png"]}]}
    put_json(world, "jobs/a.json", manifest)
    put_json(world, "jobs/b.json", {**manifest, "video_url": "media/b.mp4"})
    for key in ("jobs/a.json", "jobs/b.json"):
        (outcome,) = world.upload(key=key, metadata=None, body=b"x")
        assert outcome.status == "WAITING"  # the element is being created: a delayed retry is queued
    assert [m["job_id"] for m in world.queue.sent] == [j.job_id for j in world.jobs.items.values()]
    assert all(d > 0 for d in world.queue.delays)
    assert all("element" in j.wait_reason for j in world.jobs.items.values())
    assert len(provider.element_tasks) == 1  # the second job found the first job's creation
    provider.finish_elements()
    world.drain()
    requests = provider.requests
    assert len(requests) == 2 and requests[0].element_ids == requests[1].element_ids != ()
    assert all(j.status == JobStatus.SUBMITTED for j in world.jobs.items.values())


def test_an_element_created_by_a_job_that_crashed_before_recording_it_is_adopted():
    provider = FakeElementProvider()
    world = World(provider=provider)
    manifest = {"video_url": "media/a.mp4", "prompt": "@Element1 waves in @Video1",
                "elements": [{"frontal_image_url": "refs/mascot.png", "reference_image_urls": ["refs/mascot-side.png"]}]}
    put_json(world, "jobs/a.json", manifest)
    world.upload(key="jobs/a.json", metadata=None, body=b"x")
    (created,) = provider.element_tasks.values()
    world.elements.items.clear()  # the creator died between Kling's answer and the cache write
    provider.finish_elements()
    put_json(world, "jobs/b.json", {**manifest, "video_url": "media/b.mp4"})
    world.upload(key="jobs/b.json", metadata=None, body=b"x")
    # Kling answered "exists" (external ids are unique per account): the task is read by its
    # external id and adopted, not waited for until PROVIDER_BUSY_TOO_LONG.
    assert len(provider.element_tasks) == 1
    assert [entry["task_id"] for entry in world.elements.items.values()] == [created.task_id]
    world.drain()
    assert all(j.status == JobStatus.SUBMITTED for j in world.jobs.items.values())
    assert {r.element_ids for r in provider.requests} == {(provider.element_tasks[created.task_id].element_id,)}


@pytest.mark.parametrize(
    "key",
    ["incoming/../outside/clip.mp4", "incoming/a/../../b/clip.mp4", "incoming/bell\x07/clip.mp4",
     "incoming/" + "x" * 1015 + ".mp4"],
)
def test_hostile_clip_keys_are_rejected_without_escaping_the_output_prefix(key):
    world = World()
    outcomes = world.upload(key=key, metadata={"prompt": "p"})
    (job,) = world.jobs.items.values()
    assert (job.status, job.error_code) == (JobStatus.REJECTED, "INVALID_OUTPUT_KEY")
    assert world.provider.requests == [] and outcomes
    assert job.input_key == key  # the original is recorded as it is, for the user to find


def test_a_long_but_valid_key_keeps_its_name():
    world = World()
    key = "incoming/" + "é" * 200 + ".MOV"
    (outcome,) = world.upload(key=key, metadata={"prompt": "p"})
    assert world.jobs.get(outcome.job_id).planned_output_key == "edited/" + "é" * 200 + ".mp4"


def test_a_broken_folder_preset_is_reported_not_skipped():
    world = World()
    world.storage.put(BUCKET, "presets/beach.json", b'{"prompt": "beach",')
    world.upload(key="incoming/beach/a.mp4", metadata={})
    (job,) = world.jobs.items.values()
    assert (job.status, job.error_code) == (JobStatus.REJECTED, "INVALID_JSON")
    assert "preset 'beach'" in job.error_message
