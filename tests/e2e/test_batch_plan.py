"""``clipedit batch FILE --plan``: every row checked as the pipeline checks it and priced, nothing
submitted. Run as a user runs it, against the local stack with real clips in its inbox."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.e2e.test_cli import cli  # noqa: F401  (the module-scoped fixture)

PROMPT = "Give @Video1 a warm sunset grade. Keep the motion identical."


@pytest.fixture(scope="module")
def inbox(stack, sample_clip, tmp_path_factory):
    """The sample clip (3 s, 1280x720) and a 2 s clip (too short for the model) in the inbox."""
    from local.media import make_sample_clip

    short = tmp_path_factory.mktemp("plan") / "short.mp4"
    make_sample_clip(short, seconds=2.0, width=1280, height=720, fps=24, with_audio=False, seed=3)
    s3 = boto3.client("s3", endpoint_url=stack.info["endpoint_url"], region_name=stack.info["region"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.upload_file(str(sample_clip), stack.info["inbox_bucket"], "media/plan/good.mp4")
    s3.upload_file(str(short), stack.info["inbox_bucket"], "media/plan/short.mp4")
    return s3


def _batch_objects(s3, bucket):
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="batches/").get("Contents", [])]


def test_plan_json_prices_good_rows_names_each_rejection_and_submits_nothing(cli, inbox, stack, tmp_path):  # noqa: F811
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        "video_url,prompt,mode,provider,sku\n"
        f"media/plan/good.mp4,{PROMPT},pro,kling,A1\n"  # 3 s x $0.168
        f"media/plan/good.mp4,{PROMPT},std,fal,A2\n"  # 3 s x $0.252
        f"media/plan/short.mp4,{PROMPT},pro,kling,A3\n"  # 2 s: under the model's 3 s minimum
        f"media/plan/missing.mp4,{PROMPT},pro,kling,A4\n"  # no such clip
        "media/plan/good.mp4,,pro,kling,A5\n")  # no prompt
    before = _batch_objects(inbox, stack.info["inbox_bucket"])
    code, listed, err = cli("list", "--since", "1h", "--json", "--all")
    assert code == 0, err
    jobs_before = len(json.loads(listed)["jobs"])

    code, out, err = cli("batch", str(catalog), "--plan", "--json")

    assert code == 1, err  # a row would be rejected
    plan = json.loads(out)
    rows = {r["row"]: r for r in plan["rows"]}
    assert [rows[n]["status"] for n in range(1, 6)] == ["ok", "ok", "rejected", "rejected", "rejected"]
    assert rows[1]["estimated_cost_usd"] == pytest.approx(0.504) and rows[1]["error_code"] is None
    assert rows[2]["estimated_cost_usd"] == pytest.approx(0.756)
    assert rows[3]["error_code"] == "CLIP_TOO_SHORT" and rows[3]["estimated_cost_usd"] is None
    assert rows[4]["error_code"] and "missing.mp4" in rows[4]["error_message"]
    assert rows[5]["error_code"] == "MISSING_PROMPT"
    assert plan["total_estimated_cost_usd"] == pytest.approx(0.504 + 0.756)
    # Nothing was uploaded, created or submitted.
    assert _batch_objects(inbox, stack.info["inbox_bucket"]) == before
    code, out, _ = cli("list", "--since", "1h", "--json", "--all")
    assert len(json.loads(out)["jobs"]) == jobs_before


def test_plan_in_plain_text_ends_with_the_total(cli, inbox, tmp_path):  # noqa: F811
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(json.dumps({"video_url": "media/plan/good.mp4", "prompt": PROMPT, "mode": "pro"}) + "\n")
    code, out, err = cli("batch", str(catalog), "--plan")
    assert code == 0, err
    assert "1 row(s) ok, 0 rejected; estimated total $0.50 (nothing submitted)" in out


def test_plan_refuses_a_file_that_is_not_a_catalog_and_flags_a_misspelt_column(cli, inbox, tmp_path):  # noqa: F811
    notes = tmp_path / "catalog.txt"
    notes.write_text("video_url,prompt\nmedia/plan/good.mp4,hello\n")
    code, out, err = cli("batch", str(notes), "--plan", "--json")
    assert code == 2 and out == "" and "INVALID_BATCH_FILE" in err and ".csv" in err

    binary = tmp_path / "catalog.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    code, _, err = cli("batch", str(binary), "--plan")
    assert code == 2 and "INVALID_BATCH_FILE" in err and "binary" in err

    typo = tmp_path / "typo.csv"
    typo.write_text(f"video_url,promt\nmedia/plan/good.mp4,{PROMPT}\n")
    code, out, _ = cli("batch", str(typo), "--plan", "--json")
    (row,) = json.loads(out)["rows"]
    assert code == 1 and row["error_code"] == "UNKNOWN_COLUMN" and "did you mean 'prompt'" in row["error_message"]
