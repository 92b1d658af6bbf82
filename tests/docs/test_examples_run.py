"""The files under examples/ that the docs show are run here through intake and submit (in-memory
ports), so a page can only show an example that works: every spec, preset and batch file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipedit.domain.job import JobStatus
from tests.unit.test_submit import BUCKET, World

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = sorted((EXAMPLES / "specs").glob("*.json"))
# A job is fine here when nothing rejected it: submitted, or waiting for a step the fakes do not
# run (the prepare step for platform variants, element creation).
ACCEPTED = {JobStatus.SUBMITTED, JobStatus.QUEUED}


def _put(world: World, key: str, body: bytes) -> None:
    world.storage.put(BUCKET, key, body, {})


def _jobs(world: World) -> list:
    # Deliver the fan-out messages; a job waiting on a step the fakes do not run (element creation,
    # the prepare step) asks to be looked at again later, so stop after a bounded number.
    for _ in range(100):
        if not world.queue.sent:
            break
        world.dispatch.message(world.queue.sent.pop(0))
    return sorted(world.jobs.items.values(), key=lambda job: job.variant or "")


def test_every_spec_example_is_covered():
    assert {path.name for path in SPECS} >= {"background-swap.json", "reference-and-element.json",
                                             "style-from-reference.json", "draft-and-final.json",
                                             "platform-variants.json"}


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.name)
def test_spec_example_applied_to_an_uploaded_clip(path):
    world = World()
    manifest = json.loads(path.read_text())
    # Its assets are relative to the file (as `make demo SPEC=...` uploads them); here they are inbox keys.
    _put(world, f"jobs/examples/{path.name}", path.read_bytes())
    world.upload(key="incoming/shoot/take1.mp4", metadata={"spec": f"jobs/examples/{path.name}"})
    jobs = _jobs(world)
    variants = [variant["name"] for variant in manifest.get("variants", [])]
    assert [job.variant for job in jobs] == (sorted(variants) or [None])
    assert all(job.status in ACCEPTED for job in jobs), [(job.status, job.error_code, job.error_message) for job in jobs]
    assert all(job.prompt.startswith(manifest["prompt"].split("@Video1")[0]) for job in jobs if "prompt" not in
               next((v for v in manifest.get("variants", []) if v["name"] == job.variant), {}))
    if "output_key" in manifest:
        assert jobs[0].planned_output_key == "edited/" + manifest["output_key"].replace("{stem}", "take1")
    else:
        expected = {job.variant: f"edited/shoot/take1.{job.variant}.mp4" if job.variant else "edited/shoot/take1.mp4"
                    for job in jobs}
        assert {job.variant: job.planned_output_key for job in jobs} == expected


@pytest.mark.parametrize("path", sorted((EXAMPLES / "presets").glob("*.json")), ids=lambda path: path.name)
def test_preset_example_named_by_a_clip_or_a_batch(path):
    preset = json.loads(path.read_text())
    if "{" in preset.get("prompt", ""):  # its placeholders are filled by batch columns
        assert f",{path.stem}" in (EXAMPLES / "batches" / "catalog.csv").read_text()
        return
    world = World()
    _put(world, f"presets/{path.name}", path.read_bytes())
    world.upload(key="incoming/shoot/take1.mp4", metadata={"preset": path.stem})
    jobs = _jobs(world)
    assert len(jobs) == max(1, len(preset.get("variants", [])))
    assert all(job.preset == path.stem and job.status in ACCEPTED for job in jobs), [
        (job.status, job.error_code, job.error_message) for job in jobs]


def test_catalog_batch_example_with_its_preset():
    world = World()
    _put(world, "presets/studio.json", (EXAMPLES / "presets" / "studio.json").read_bytes())
    body = (EXAMPLES / "batches" / "catalog.csv").read_bytes()
    rows = body.decode().strip().splitlines()[1:]
    world.upload(key="batches/catalog.csv", metadata={}, body=body)
    jobs = _jobs(world)
    assert len(jobs) == len(rows) == 3
    assert all(job.status in ACCEPTED for job in jobs), [(job.error_code, job.error_message) for job in jobs]
    skus = [row.split(",")[1] for row in rows]
    assert sorted(job.planned_output_key for job in jobs) == sorted(f"edited/catalog/{sku}.mp4" for sku in skus)
    assert any("Product: Red canvas sneaker" in job.prompt for job in jobs)
