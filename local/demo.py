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
    parser.add_argument("--out", type=Path, default=ROOT / "demo-output")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    # Handler logs are JSON lines on stdout; keep the demo readable unless asked otherwise.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("LOG_LEVEL", "WARNING"))
    os.environ.setdefault("CLIPEDIT_EMULATOR_PROCESSING_SECONDS", "3")

    from local.client import LocalClient
    from local.media import make_sample_clip, probe
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
    say("starting the local stack (moto, Kling emulator, callback gateway)...")
    with LocalStack() as stack:
        client = LocalClient(stack.info)
        key = f"{stack.info['incoming_prefix']}demo/{clip.name}"
        job_id = client.upload_clip(clip, key, {"prompt": args.prompt, "mode": args.mode, "keep-audio": args.keep_audio})
        say(f"uploaded s3://{stack.info['inbox_bucket']}/{key} -> job {job_id}")

        def progress(job: dict) -> None:
            extra = f" ({job.get('error_code')}: {job.get('error_message')})" if job.get("error_code") else ""
            say(f"  [{time.monotonic() - started:6.1f} s] {job['status']}{extra}")

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
    print(json.dumps(job, sort_keys=True, default=str))
    return 0 if job["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
