"""``make demo``: the whole pipeline, end to end, on the embedded local stack.

Starts the local stack, makes a sample clip with an audio track (or takes ``--clip``), uploads it
to the inbox with the edit in its metadata, shows the job's progress, downloads the edited clip
into ``demo-output/`` and prints the job record as one JSON object on the last stdout line.
Exits 0 only if the job SUCCEEDED.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from local.template import ROOT

DEFAULT_PROMPT = "Give @Video1 a warm golden-hour colour grade. Keep the subject, motion and camera identical."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="an mp4/mov to edit (default: a generated sample)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--mode", choices=["std", "pro"], default="std")
    parser.add_argument("--keep-audio", choices=["true", "false"], default="true")
    parser.add_argument("--provider", choices=["kling", "fal"], default=os.environ.get("PROVIDER") or "kling",
                        help="the stack's default provider for the demo's jobs (Kling's API or fal's queue API, "
                        "both emulated locally)")
    parser.add_argument("--spec", type=Path, help="a JSON manifest to run instead of metadata; local file paths in "
                        "its *_url fields are uploaded to the inbox first (see examples/specs/)")
    parser.add_argument("--platform", help="reels, tiktok, shorts, youtube or square; several, comma-separated, "
                        "make one variant each (the clip is reframed before the edit)")
    parser.add_argument("--out", type=Path, default=ROOT / "demo-output")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    # Handler logs are JSON lines on stdout; keep the demo readable unless asked otherwise.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("LOG_LEVEL", "WARNING"))
    os.environ.setdefault("CLIPEDIT_EMULATOR_PROCESSING_SECONDS", "3")
    os.environ["CLIPEDIT_DEFAULT_PROVIDER"] = args.provider  # the DefaultProvider stack parameter

    from local.client import LocalClient
    from local.media import make_sample_clip
    from local.stack import LocalStack

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    clip = args.clip
    if clip is None:
        clip = args.out / "sample.mp4"
        say(f"making a 4 s 1280x720 sample clip with a tone -> {clip}")
        make_sample_clip(clip, seconds=4.0, width=1280, height=720, fps=24, with_audio=True)
    if not clip.is_file():
        say(f"no such clip: {clip}")
        return 2

    started = time.monotonic()
    say(f"starting the local stack (moto, Kling and fal emulators, callback gateway); provider: {args.provider}...")
    with LocalStack() as stack:
        client = LocalClient(stack.info)

        def progress(job: dict) -> None:
            extra = f" ({job.get('error_code')}: {job.get('error_message')})" if job.get("error_code") else ""
            label = f" {job['variant']}" if job.get("variant") else ""
            say(f"  [{time.monotonic() - started:6.1f} s]{label} {job['status']}{extra}")

        if args.platform and "," in args.platform:
            record, code = _run_spec(client, args, clip, progress, say, manifest=_platform_manifest(args))
        elif args.spec:
            record, code = _run_spec(client, args, clip, progress, say)
        else:
            record, code = _run_clip(stack, client, args, clip, progress, say)
    # Printed once the stack has stopped, so no late handler log line can follow it on stdout.
    print(json.dumps(_public(record), sort_keys=True, default=str))
    return code


def _run_clip(stack, client, args, clip: Path, progress, say) -> tuple[dict, int]:  # type: ignore[no-untyped-def]
    """Upload the clip under incoming/demo/ with the prompt as metadata, and follow its job."""
    from local.media import probe

    key = f"{stack.info['incoming_prefix']}demo/{clip.name}"
    metadata = {"prompt": args.prompt, "mode": args.mode, "keep-audio": args.keep_audio}
    if args.platform:
        metadata["platform"] = args.platform
    job_id = client.upload_clip(clip, key, metadata)
    say(f"uploaded s3://{stack.info['inbox_bucket']}/{key} -> job {job_id}")
    job = client.wait_for_job(job_id, timeout=args.timeout, on_change=progress)
    if job["status"] == "SUCCEEDED":
        local_path = client.download_output(job, args.out / f"{clip.stem}.edited.mp4")
        job["local_path"] = str(local_path)
        before, after = probe(clip), probe(local_path)
        say(f"edited clip: {local_path} ({job['output_size']} bytes, s3://{job['output_bucket']}/{job['output_key']})")
        say(f"  input : {before['width']}x{before['height']} {before['fps']:.0f} fps {before['duration_seconds']:.1f} s "
            f"audio={before['has_audio']} mean RGB={before['mean_rgb']}")
        say(f"  output: {after['width']}x{after['height']} {after['fps']:.0f} fps {after['duration_seconds']:.1f} s "
            f"audio={after['has_audio']} mean RGB={after['mean_rgb']}")
    return job, 0 if job["status"] == "SUCCEEDED" else 1


def _public(record: dict) -> dict:
    """The record as `clipedit status --json` shows it: no callback secret hash, no finalize lease."""
    from clipedit.usecases.queries import PRIVATE_FIELDS

    shown = {name: value for name, value in record.items() if name not in PRIVATE_FIELDS}
    if "jobs" in shown:
        shown["jobs"] = [_public(job) for job in shown["jobs"]]
    return shown


def _platform_manifest(args) -> dict:  # type: ignore[no-untyped-def]
    names = [name.strip() for name in args.platform.split(",") if name.strip()]
    return {"prompt": args.prompt, "mode": args.mode, "keep_audio": args.keep_audio == "true",
            "variants": [{"name": name, "platform": name} for name in names]}


def _run_spec(client, args, clip: Path, progress, say, manifest: dict | None = None) -> tuple[dict, int]:  # type: ignore[no-untyped-def]
    """Upload the manifest's local media, then the manifest under jobs/demo/, and follow its jobs."""
    from local.media import probe

    spec_path = args.spec.resolve() if manifest is None else args.out.resolve() / "platforms.json"
    manifest = manifest if manifest is not None else json.loads(spec_path.read_text())
    bucket = client.info["inbox_bucket"]

    def upload_local(value: str) -> str:
        path = (spec_path.parent / value)
        if "://" in value or not path.is_file():
            return value  # already an https://, s3:// or inbox key reference
        key = f"demo/media/{path.name}"
        client.s3.upload_file(str(path), bucket, key)
        say(f"uploaded {value} -> s3://{bucket}/{key}")
        return key

    if "video_url" not in manifest:
        manifest["video_url"] = str(clip)
    manifest["video_url"] = upload_local(manifest["video_url"])
    manifest["image_urls"] = [upload_local(u) for u in manifest.get("image_urls", [])]
    for element in manifest.get("elements", []):
        element["frontal_image_url"] = upload_local(element["frontal_image_url"])
        element["reference_image_urls"] = [upload_local(u) for u in element["reference_image_urls"]]
    key = f"jobs/demo/{spec_path.name}"
    client.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    say(f"uploaded manifest s3://{bucket}/{key}")
    jobs = client.wait_for_source(key, timeout=args.timeout, on_change=progress)
    for job in jobs:
        if job["status"] == "SUCCEEDED":
            suffix = f".{job['variant']}" if job.get("variant") else ""
            local_path = client.download_output(job, args.out / f"{spec_path.stem}{suffix}.edited.mp4")
            job["local_path"] = str(local_path)
            after = probe(local_path)
            say(f"edited clip: {local_path} (s3://{job['output_bucket']}/{job['output_key']}) "
                f"{after['width']}x{after['height']} audio={after['has_audio']} mean RGB={after['mean_rgb']}")
    ok = bool(jobs) and all(job["status"] == "SUCCEEDED" for job in jobs)
    record = jobs[0] if len(jobs) == 1 else {"status": "SUCCEEDED" if ok else "FAILED", "jobs": jobs}
    return record, 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
