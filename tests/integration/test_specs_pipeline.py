"""Specs on the local stack: real bad media rejected before the provider is paid, manifests with
reference images and elements, and a catalog batch to its results file."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import set_knobs
from tests.media_fixtures import MediaFiles


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return MediaFiles(tmp_path_factory.mktemp("media"))


def provider_tasks(emulator, job_id):
    return [t for t in emulator.tasks() if t["external_task_id"] == job_id]


@pytest.mark.parametrize(
    ("fixture", "code"),
    [("text_mp4", "NOT_A_VIDEO"), ("short_2s", "CLIP_TOO_SHORT"), ("long_11s", "CLIP_TOO_LONG"),
     ("truncated", "CLIP_UNREADABLE"), ("audio_only", "NO_VIDEO_TRACK"),
     # What normalize would fix is refused when the user turns it off.
     ("low_res_480p", "RESOLUTION_TOO_LOW"), ("uhd_4k", "RESOLUTION_TOO_HIGH"), ("fps_90", "FPS_TOO_HIGH")],
)
def test_a_bad_clip_is_rejected_with_a_specific_code_and_kling_is_never_called(stack, client, emulator, media, fixture, code):
    key = f"incoming/bad/{fixture}.mp4"
    job_id = client.upload_clip(getattr(media, fixture), key, {"prompt": "Make @Video1 warmer", "normalize": "false"}
                                if fixture in ("low_res_480p", "uhd_4k", "fps_90") else {"prompt": "Make @Video1 warmer"})
    job = client.wait_for_job(job_id, timeout=60)
    assert (job["status"], job["error_code"]) == ("REJECTED", code), job.get("error_message")
    assert job["error_message"] and provider_tasks(emulator, job_id) == []
    # Nothing lost: the original is still there, untouched.
    head = client.s3.head_object(Bucket=stack.info["inbox_bucket"], Key=key)
    assert head["ContentLength"] == getattr(media, fixture).stat().st_size


def put(client, stack, key, data: bytes, metadata=None):
    client.s3.put_object(Bucket=stack.info["inbox_bucket"], Key=key, Body=data, Metadata=metadata or {})


def test_a_manifest_with_five_images_is_rejected(stack, client, emulator, media):
    manifest = {"video_url": "media/clip.mp4", "prompt": "p", "image_urls": [f"refs/{i}.png" for i in range(5)]}
    put(client, stack, "jobs/five-images.json", json.dumps(manifest).encode())
    (job,) = client.wait_for_source("jobs/five-images.json", timeout=30)
    assert job["error_code"] == "TOO_MANY_REFERENCES" and "at most 4" in job["error_message"]


def test_a_manifest_with_an_image_and_an_element_reaches_kling_and_shows_in_the_output(stack, client, emulator, media, tmp_path):
    set_knobs(emulator, processing_seconds=0.3)
    put(client, stack, "media/clip.mp4", media.valid_mp4.read_bytes())
    put(client, stack, "refs/style.png", media.png_512.read_bytes())
    put(client, stack, "refs/front.jpg", media.jpeg_512.read_bytes())
    put(client, stack, "refs/side.png", media.png_512.read_bytes())
    manifest = {"video_url": "media/clip.mp4", "prompt": "Swap the person in @Video1 for @Element1 in the style of @Image1",
                "image_urls": ["refs/style.png"],
                "elements": [{"frontal_image_url": "refs/front.jpg", "reference_image_urls": ["refs/side.png"]}],
                "mode": "std"}
    put(client, stack, "jobs/element-a.json", json.dumps(manifest).encode())
    put(client, stack, "jobs/element-b.json", json.dumps({**manifest, "tags": {"copy": "b"}}).encode())
    (a,) = client.wait_for_source("jobs/element-a.json", timeout=120)
    (b,) = client.wait_for_source("jobs/element-b.json", timeout=120)
    assert a["status"] == b["status"] == "SUCCEEDED", (a.get("error_message"), b.get("error_message"))
    assert a["element_ids"] == b["element_ids"] and len(a["element_ids"]) == 1  # created once, reused
    assert len(emulator.elements()) == 1
    (task,) = provider_tasks(emulator, a["job_id"])
    body = task["request"]
    assert body["prompt"] == "Swap the person in <<<video_1>>> for <<<element_1>>> in the style of <<<image_1>>>"
    assert len(body["image_list"]) == 1 and body["element_list"] == [{"element_id": int(a["element_ids"][0])}]


def test_a_catalog_batch_runs_every_row_and_writes_its_results(stack, client, emulator, media):
    set_knobs(emulator, processing_seconds=0.2)
    for sku in ("1", "2"):
        put(client, stack, f"media/sku-{sku}.mp4", media.valid_mp4.read_bytes())
    put(client, stack, "presets/studio.json", json.dumps({
        "prompt": "Put the product in @Video1 on a white studio background. Product: {title}",
        "mode": "std", "output_key": "catalog/{sku}.mp4"}).encode())
    rows = ("video_url,sku,title,preset\n"
            "media/sku-1.mp4,S1,Red shoe,studio\n"
            "media/sku-2.mp4,S2,Blue hat,studio\n"
            "media/missing.mp4,S3,Ghost,studio\n"
            "media/sku-1.mp4,S4,Bad preset,nope\n")
    put(client, stack, "batches/spring.csv", rows.encode())
    jobs = client.wait_for_source("batches/spring.csv", timeout=120, expected=4)
    assert [(j["batch_row"], j["status"], j.get("error_code")) for j in jobs] == [
        (1, "SUCCEEDED", None), (2, "SUCCEEDED", None), (3, "REJECTED", "CLIP_NOT_FOUND"), (4, "REJECTED", "UNKNOWN_PRESET")]
    assert jobs[0]["output_key"] == "edited/catalog/S1.mp4" and jobs[0]["tags"]["title"] == "Red shoe"
    (task,) = provider_tasks(emulator, jobs[0]["job_id"])
    assert task["request"]["prompt"].endswith("Product: Red shoe")
    batch = client.wait_for_batch(jobs[0]["batch_id"])
    assert batch["total"] == 4 and batch["counts"]["SUCCEEDED"] == 2 and batch["counts"]["REJECTED"] == 2
    results_obj = client.s3.get_object(Bucket=stack.info["inbox_bucket"], Key="batches/spring.results.csv")
    results = list(csv.DictReader(io.StringIO(results_obj["Body"].read().decode())))
    assert [(r["row"], r["status"], r["error_code"]) for r in results] == [
        ("1", "SUCCEEDED", ""), ("2", "SUCCEEDED", ""), ("3", "REJECTED", "CLIP_NOT_FOUND"), ("4", "REJECTED", "UNKNOWN_PRESET")]
