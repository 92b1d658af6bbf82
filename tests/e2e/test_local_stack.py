"""End to end on the local stack, as a user runs it: upload a clip, get the edited clip back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.client import LocalClient
from local.media import probe
from local.stack import LocalOptions, LocalStack

ROOT = Path(__file__).resolve().parents[2]


def _stack(tmp_path_factory, name, **options):
    emulator = options.pop("emulator", {})
    opts = LocalOptions(state_dir=tmp_path_factory.mktemp(name), name=name, visibility_timeout_seconds=2,
                        emulator_overrides={"CLIPEDIT_EMULATOR_SEED": "3", **emulator}, **options)
    return LocalStack(opts)


@pytest.fixture(scope="module")
def callback_stack(tmp_path_factory):
    # A poll interval far longer than the edit: only the callback can finish these jobs in time.
    with _stack(tmp_path_factory, "cb", poll_interval_seconds=60,
                emulator={"CLIPEDIT_EMULATOR_PROCESSING_SECONDS": "0.5"}) as stack:
        yield stack


def provider_tasks(stack, provider, job_id):
    emulator = stack.emulator if provider == "kling" else stack.fal_emulator
    return [t for t in emulator.tasks() if f"/{job_id}?" in (t.get("callback_url") or "")]


@pytest.mark.parametrize("provider", ["kling", "fal"])
def test_a_clip_with_spaces_accents_and_upper_case_mov_comes_back_edited(callback_stack, sample_clip, tmp_path,
                                                                         provider):
    client = LocalClient(callback_stack.info)
    key = f"incoming/summer sale/{provider}/Clip été 01.MOV"
    job_id = client.upload_clip(sample_clip, key, {"prompt": "Give @Video1 a warm grade", "mode": "pro",
                                                   "provider": provider})
    job = client.wait_for_job(job_id, timeout=60)

    assert job["status"] == "SUCCEEDED" and job["finalized_by"] == "callback"  # fal: a verified, signed webhook
    assert job["input_key"] == key and job["output_key"] == f"edited/summer sale/{provider}/Clip été 01.mp4"
    assert job["output_bucket"] == callback_stack.info["outputs_bucket"]
    for field in ("provider_task_id", "created_at", "updated_at", "submitted_at", "finished_at", "prompt", "mode"):
        assert job[field], field
    (task,) = provider_tasks(callback_stack, provider, job_id)
    if provider == "kling":
        assert job["provider_units"] and job["output_duration_seconds"] == pytest.approx(3.0, abs=0.2)
        assert job["cost_source"] == "provider_units" and job["cost_usd"] == pytest.approx(float(job["provider_units"]) * 0.14)
    else:  # fal reports no per-request billing: the price table's figure for the seconds produced
        assert job["cost_source"] == "price_table" and job["cost_usd"] == pytest.approx(3 * 0.336)
    if provider == "kling":
        assert [h["status"] for h in job["status_history"]] == ["RECEIVED", "QUEUED", "SUBMITTED", "PROCESSING",
                                                                "SUCCEEDED"]
        assert task["request"]["model_name"] == "kling-v3-omni" and task["request"]["mode"] == "pro"
        assert task["request"]["prompt"] == "Give <<<video_1>>> a warm grade"
        assert task["request"]["video_list"][0]["refer_type"] == "base"
        assert task["request"]["video_list"][0]["keep_original_sound"] == "yes"
    else:
        # fal pushes no "processing" notice (one webhook, at the end) and bills no units back.
        assert [h["status"] for h in job["status_history"]][-1] == "SUCCEEDED"
        assert task["endpoint"] == "fal-ai/kling-video/o3/pro/video-to-video/edit"
        assert task["request"] == {"prompt": "Give @Video1 a warm grade", "video_url": task["video_url"],
                                   "keep_audio": True}

    edited = client.download_output(job, tmp_path / "edited.mp4")
    before, after = probe(sample_clip), probe(edited)
    assert after["fps"] == pytest.approx(24, abs=0.5) and after["has_audio"]
    assert after["mean_rgb"][0] > before["mean_rgb"][0] + 10  # the grade is visible: warmer
    assert after["mean_rgb"][2] < before["mean_rgb"][2] - 10
    assert job["output_size"] == edited.stat().st_size


@pytest.mark.parametrize("provider", ["kling", "fal"])
def test_keep_audio_false_and_model_o1_reach_the_provider(callback_stack, sample_clip, tmp_path, provider):
    client = LocalClient(callback_stack.info)
    job_id = client.upload_clip(sample_clip, f"incoming/mute/{provider}.mp4",
                                {"prompt": "Relight the scene", "keep-audio": "false", "model": "o1", "mode": "std",
                                 "provider": provider})
    job = client.wait_for_job(job_id, timeout=60)
    assert job["status"] == "SUCCEEDED" and job["keep_audio"] is False
    (task,) = provider_tasks(callback_stack, provider, job_id)
    if provider == "kling":
        assert task["request"]["model_name"] == "kling-video-o1" and task["request"]["mode"] == "std"
        assert task["keep_original_sound"] == "no"
    else:
        assert task["endpoint"] == "fal-ai/kling-video/o1/standard/video-to-video/edit"
        assert task["request"]["keep_audio"] is False
    assert not probe(client.download_output(job, tmp_path / "mute.mp4"))["has_audio"]


def test_a_job_past_its_deadline_times_out(tmp_path_factory, sample_clip):
    with _stack(tmp_path_factory, "deadline", poll_interval_seconds=1, job_deadline_seconds=2,
                emulator={"CLIPEDIT_EMULATOR_PROCESSING_SECONDS": "120"}) as stack:
        client = LocalClient(stack.info)
        job_id = client.upload_clip(sample_clip, "incoming/slow/clip.mp4", {"prompt": "p"})
        job = client.wait_for_job(job_id, timeout=60)
        assert job["status"] == "TIMED_OUT" and job["error_code"] == "DEADLINE_EXCEEDED"
        assert job["finalized_by"] == "poller"
        execution = stack.client("stepfunctions").describe_execution(
            executionArn=f"{stack.info['state_machine_arn'].replace(':stateMachine:', ':execution:')}:{job_id}")
        assert execution["status"] in ("RUNNING", "SUCCEEDED")  # the loop ends on the terminal answer


@pytest.mark.parametrize("provider", ["kling", "fal"])
def test_make_demo_runs_the_pipeline_end_to_end(tmp_path, provider):
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'layers/clipedit/python'}:{ROOT}",
               CLIPEDIT_EMULATOR_PROCESSING_SECONDS="0.5")
    result = subprocess.run(
        [sys.executable, "-m", "local.demo", "--out", str(tmp_path), "--provider", provider], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["status"] == "SUCCEEDED" and record["provider"] == provider
    assert not {"callback_token_hash", "finalize_lease_owner", "finalize_lease_until"} & record.keys()
    assert Path(record["local_path"]).is_file() and Path(record["local_path"]).parent == tmp_path


def test_make_demo_with_a_spec_uses_the_reference_image_and_the_element(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'layers/clipedit/python'}:{ROOT}",
               CLIPEDIT_EMULATOR_PROCESSING_SECONDS="0.5")
    result = subprocess.run(
        [sys.executable, "-m", "local.demo", "--out", str(tmp_path), "--spec",
         str(ROOT / "examples/specs/reference-and-element.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["status"] == "SUCCEEDED" and record.get("output_key") == "edited/demo/sample-mascot.mp4", (
        json.dumps(record)[:3000], result.stderr[-3000:])
    assert len(record["element_ids"]) == 1 and len(record["image_urls"]) == 1
    assert Path(record["local_path"]).is_file()
