"""The ``clipedit`` command against the local stack, run as a user runs it: a separate process that
finds the stack through its state file. Submit, watch to completion, status/list JSON, batch,
download, retry, cancel, doctor, and the exit codes scripts rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import set_knobs

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "Give @Video1 a warm sunset grade. Keep the motion identical."


@pytest.fixture(scope="module")
def cli(stack):
    """Run ``clipedit ARGS``; returns (exit code, stdout, stderr). Only the state file connects the
    command to the stack: none of the test process's AWS variables are passed on."""
    local_file = stack.options.state_dir / "local.json"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "cli"), str(ROOT / "layers/clipedit/python")]),
           "CLIPEDIT_LOCAL_FILE": str(local_file), "COLUMNS": "200"}

    def run(*args: str, timeout: float = 120) -> tuple[int, str, str]:
        done = subprocess.run([sys.executable, "-m", "clipedit_cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout, done.stderr

    return run


def last_json(stdout: str):
    """The final JSON document a command printed (watch prints JSON lines first, then a summary)."""
    start = stdout.rindex("\n{") + 1 if "\n{" in stdout else stdout.index("{")
    return json.loads(stdout[start:])


def test_submit_watch_status_list_and_download(cli, sample_clip, tmp_path):
    code, out, err = cli("submit", str(sample_clip), "--prompt", PROMPT, "--mode", "std", "--tag", "shot=42",
                         "--watch", "--json", "--timeout", "90")
    assert code == 0, err
    progress = [json.loads(line) for line in out.splitlines() if line.startswith('{"job_id"')]
    (job,) = last_json(out)["jobs"]
    job_id = job["job_id"]
    assert job["status"] == "SUCCEEDED"
    assert [p["status"] for p in progress if p["job_id"] == job_id][-1] == "SUCCEEDED"

    code, out, _ = cli("status", job_id, "--json")
    view = json.loads(out)
    assert code == 0 and view["status"] == "SUCCEEDED" and view["tags"] == {"shot": "42"}
    assert [h["status"] for h in view["status_history"]] == ["RECEIVED", "QUEUED", "SUBMITTED", "PROCESSING",
                                                            "SUCCEEDED"]
    assert view["video_ref"]["key"].startswith("media/cli/") and "callback_token_hash" not in view

    code, out, _ = cli("list", "--status", "SUCCEEDED", "--since", "10m", "--json")
    listing = json.loads(out)
    assert code == 0 and job_id in [j["job_id"] for j in listing["jobs"]]

    code, out, _ = cli("download", job_id, "--to", str(tmp_path))
    path = Path(out.strip())
    assert code == 0 and path.parent == tmp_path and path.stat().st_size == view["output_size"]


def test_watch_in_plain_text_shows_each_status_with_elapsed_time(cli, sample_clip):
    code, out, _ = cli("submit", str(sample_clip), "--prompt", PROMPT)
    (job_id,) = out.split()
    code, out, err = cli("watch", job_id, "--timeout", "90")
    assert code == 0, err
    lines = [line for line in out.splitlines() if job_id in line]
    assert " s] " in lines[0] and lines[-1].split()[1] == "SUCCEEDED"
    # No filter: every status, newest first (the status API tests seed seven jobs dated 2099 ahead of it).
    code, out, err = cli("list", "--limit", "20")
    assert code == 0 and job_id in out, err


def test_batch_is_uploaded_and_watched_to_its_results(cli, stack, client, sample_clip, tmp_path):
    run = uuid.uuid4().hex[:8]
    for sku in ("A1", "B2"):
        client.s3.upload_file(str(sample_clip), stack.info["inbox_bucket"], f"media/{run}/{sku}.mp4")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("video_url,sku,prompt,mode\n" + "".join(
        f"media/{run}/{sku}.mp4,{sku},Put product {{sku}} in @Video1 on a white studio background,std\n"
        for sku in ("A1", "B2")))
    code, out, err = cli("batch", str(catalog), "--json", "--timeout", "120")
    assert code == 0, err
    result = last_json(out)
    assert result["done"] and result["total"] == 2 and result["counts"] == {"SUCCEEDED": 2}
    code, out, _ = cli("list", "--batch", result["batch_id"], "--json")
    rows = json.loads(out)["jobs"]
    assert [(r["batch_row"], r["tags"]["sku"], r["status"]) for r in rows] == [(1, "A1", "SUCCEEDED"),
                                                                               (2, "B2", "SUCCEEDED")]


def test_a_failed_job_is_retried_as_a_new_job_once(cli, emulator, sample_clip):
    set_knobs(emulator, fail_rate=1.0)
    code, out, err = cli("submit", str(sample_clip), "--prompt", PROMPT, "--watch", "--json", "--timeout", "90")
    set_knobs(emulator, fail_rate=0.0)
    assert code == 1, err  # watched to the end, not SUCCEEDED
    (failed,) = last_json(out)["jobs"]
    assert failed["status"] == "FAILED" and failed["error_code"] == "PROVIDER_TASK_FAILED"

    code, out, _ = cli("retry", failed["job_id"], "--json")
    first = json.loads(out)
    code_again, out_again, _ = cli("retry", failed["job_id"], "--json")
    again = json.loads(out_again)
    assert code == code_again == 0
    assert first["created"] and not again["created"] and first["job_id"] == again["job_id"] != failed["job_id"]

    code, out, err = cli("watch", first["job_id"], "--json", "--timeout", "90")
    assert code == 0, err
    code, out, _ = cli("status", first["job_id"], "--json")
    assert json.loads(out)["retry_of"] == failed["job_id"]
    code, out, _ = cli("status", failed["job_id"], "--json")
    assert json.loads(out)["status"] == "FAILED"  # the original is left as it was

    code, _, err = cli("retry", first["job_id"])
    assert code == 5 and "only FAILED, REJECTED, TIMED_OUT jobs can be retried" in err
    code, _, err = cli("download", failed["job_id"])
    assert code == 5 and "PROVIDER_TASK_FAILED" in err


def test_cancel_says_kling_cannot_cancel_a_task_it_has(cli, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=30.0)
    try:
        code, out, _ = cli("submit", str(sample_clip), "--prompt", PROMPT)
        (job_id,) = out.split()
        client.wait_for_job(job_id, statuses={"SUBMITTED", "PROCESSING"})
        code, _, err = cli("cancel", job_id)
    finally:
        set_knobs(emulator, processing_seconds=0.5)
    assert code == 5 and "CANCEL_NOT_SUPPORTED" in err and "not supported by provider kling" in err
    assert client.job(job_id)["status"] in ("SUBMITTED", "PROCESSING", "SUCCEEDED")


def test_doctor_checks_everything_on_the_local_stack(cli):
    code, out, err = cli("doctor", "--json")
    checks = {c["check"]: c for c in json.loads(out)}
    assert code == 0, err
    assert all(c["state"] == "ok" for c in checks.values()), checks
    assert "accepted the key" in checks["provider key"]["detail"]
    assert "accepted the key" in checks["fal key"]["detail"]  # the local secret holds both providers' keys
    assert "secret_key" in checks["provider secret"]["detail"] and "local-secret-key" not in out


def test_doctor_tells_a_refused_key_from_a_good_one(stack):
    from clipedit_cli.doctor import check_kling
    from clipedit_cli.target import resolve_target

    target = resolve_target(local_file=str(stack.options.state_dir / "local.json"))
    refused = check_kling(target, {"access_key": "not-the-key", "secret_key": "not-the-secret-either-0123456789abcdef"})
    assert refused.state == "fail" and "refused the key (Kling error 100" in refused.detail  # 1000-1004: auth
    assert check_kling(target, {"access_key": "", "secret_key": ""}).state == "fail"


def test_doctor_tells_a_refused_fal_key_from_a_good_one(stack):
    from clipedit_cli.doctor import check_fal
    from clipedit_cli.target import resolve_target
    from local.stack import LOCAL_FAL_KEY

    target = resolve_target(local_file=str(stack.options.state_dir / "local.json"))
    assert check_fal(target, {"fal_key": LOCAL_FAL_KEY}).state == "ok"
    refused = check_fal(target, {"fal_key": "not-the:key"})
    assert refused.state == "fail" and "refused the key" in refused.detail
    assert check_fal(target, {}).state == "fail"  # no fal key in the secret


@pytest.mark.parametrize("args, code, message", [
    (("status", "j-00000000000000000000000000000000"), 4, "no job"),
    (("watch",), 2, "give at least one job id"),
    (("list", "--status", "DONE"), 2, "status must be one of"),
    (("submit", "no-such-file.mp4", "--prompt", "x"), 2, "not a local file"),
])
def test_errors_are_one_line_with_a_documented_exit_code(cli, args, code, message):
    exit_code, _, err = cli(*args)
    assert exit_code == code and message in err and "Traceback" not in err


def test_no_reachable_stack_is_exit_3(cli, tmp_path):
    stale = tmp_path / "local.json"
    stale.write_text(json.dumps({"pid": 2 ** 22 + 12345, "endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"}))
    env_file = {"CLIPEDIT_LOCAL_FILE": str(stale)}
    done = subprocess.run([sys.executable, "-m", "clipedit_cli", "--local-file", str(stale), "list"], cwd=tmp_path,
                          env={**os.environ, **env_file, "PYTHONPATH": f"{ROOT / 'cli'}:{ROOT / 'layers/clipedit/python'}"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "is not running" in done.stderr
    done = subprocess.run([sys.executable, "-m", "clipedit_cli", "--local-file", str(tmp_path / "none.json"), "list"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": f"{ROOT / 'cli'}:{ROOT / 'layers/clipedit/python'}"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "does not exist" in done.stderr


def test_the_makefile_installs_the_command_into_the_virtualenv():
    script = Path(sys.executable).parent / "clipedit"
    if not script.exists():
        pytest.skip("not running from the Makefile's .venv")
    started = time.monotonic()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0 and "Exit codes:" in done.stdout, done.stderr
    assert time.monotonic() - started < 30


def test_dlq_on_a_stack_that_names_no_dead_letter_queue_is_a_no_target_error(stack, tmp_path):
    from typer.testing import CliRunner

    from clipedit_cli.app import app

    info = json.loads((stack.options.state_dir / "local.json").read_text())
    info.pop("dead_letter_queue_url")
    partial = tmp_path / "local.json"
    partial.write_text(json.dumps(info))
    from clipedit_cli.errors import CliError, Exit

    # In-process, the error reaches the runner (main() turns it into the exit code and one line).
    result = CliRunner().invoke(app, ["--local-file", str(partial), "dlq", "list"])
    assert isinstance(result.exception, CliError) and result.exception.code == Exit.NO_TARGET
    assert "names no dead-letter queue" in result.exception.message
