"""The review page in a real browser (Debian Chromium, headless, driven by Selenium) against the
local stack with real jobs: live list, synced players and wipe view, Approve/Reject, Try again,
Promote to pro, keyboard, plan + Launch, batch grid with bulk approve and exports, bad input.

One local stack (the session's), one served app and one browser for the whole module."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.conftest import set_knobs
from tests.e2e.review_support import (
    MISSING_REASON,
    ServedReviewApp,
    chromium_available,
    headless_chromium,
    save_screenshot,
)

if not chromium_available():
    pytest.skip(MISSING_REASON, allow_module_level=True)

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from tests import web

PROMPT = "Give @Video1 a warm sunset grade. Keep the motion identical."
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "CANCELLED"}


@pytest.fixture(scope="module")
def backend(stack):
    from clipedit_cli.backend import Backend
    from clipedit_cli.target import resolve_target

    return Backend(resolve_target(local_file=str(stack.options.state_dir / "local.json")))


@pytest.fixture(scope="module")
def served(backend):
    with ServedReviewApp(backend) as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium()
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 60.0):
    # Live parts of the page are replaced every few seconds: an element found a moment ago may be gone.
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(condition)


def text_of(driver, css: str) -> str:
    """The element's visible text, read in one script call (no reference to go stale)."""
    text = driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css)
    if text is None:
        raise NoSuchElementException(css)
    return text.strip()


def submit_clip(client, sample_clip, *, mode: str = "std") -> str:
    key = f"incoming/review/{uuid.uuid4().hex[:8]}/clip.mp4"
    return client.upload_clip(sample_clip, key, {"prompt": PROMPT, "mode": mode})


@pytest.fixture(scope="module")
def finished_job(stack, sample_clip):
    from local.client import LocalClient

    client = LocalClient(stack.info)
    job = client.wait_for_job(submit_clip(client, sample_clip), timeout=90)
    assert job["status"] == "SUCCEEDED"
    return job


def open_job(browser, served, job_id: str) -> None:
    browser.get(f"{served.url}/jobs/{job_id}")
    wait(browser, lambda d: d.find_element(By.ID, "job-status"))


# --- the list ---------------------------------------------------------------------------------


def test_the_list_shows_a_job_finish_without_a_reload(served, browser, client, emulator, sample_clip):
    set_knobs(emulator, processing_seconds=3.0)  # long enough to see it running first
    browser.get(served.url + "/")
    browser.execute_script("window.__sameDocument = 'still here';")
    job_id = submit_clip(client, sample_clip)
    row = f"#row-{job_id}"
    status_of = "const e = document.querySelector(arguments[0]); return e ? e.dataset.status : null;"
    seen = wait(browser, lambda d: d.execute_script(status_of, row))
    assert seen not in TERMINAL, f"the row first showed {seen}: it should have been caught running"
    wait(browser, lambda d: d.execute_script(status_of, row) == "SUCCEEDED", 90)
    assert browser.execute_script("return window.__sameDocument") == "still here"  # never reloaded
    assert "SUCCEEDED" in text_of(browser, row) and "$" in text_of(browser, "#spent")
    save_screenshot(browser, "review-list.png")


# --- one job: players, wipe, review, keyboard ---------------------------------------------------


def players_ready(driver) -> bool:
    return driver.execute_script(
        "const s = document.getElementById('source'), o = document.getElementById('output');"
        "return !!s && !!o && s.readyState >= 3 && o.readyState >= 3;")


def both_times(driver) -> tuple[float, float, bool, bool]:
    return tuple(driver.execute_script(
        "const s = document.getElementById('source'), o = document.getElementById('output');"
        "return [s.currentTime, o.currentTime, s.paused, o.paused];"))


def test_both_players_play_and_stay_together_after_a_seek(served, browser, finished_job):
    open_job(browser, served, finished_job["job_id"])
    wait(browser, players_ready, 30)
    browser.execute_script("document.getElementById('source').currentTime = 1.0;")  # the user drags the source
    wait(browser, lambda d: abs(both_times(d)[1] - 1.0) < 0.05, 10)  # the edited clip followed
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.SPACE)  # space plays both
    wait(browser, lambda d: not any(both_times(d)[2:]) and both_times(d)[0] > 1.3, 10)
    gaps = []
    for _ in range(8):
        source, output, source_paused, output_paused = both_times(browser)
        assert not source_paused and not output_paused
        gaps.append(abs(source - output))
        time.sleep(0.1)  # sampling a playing video over ~1 s of real time; nothing to await
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.SPACE)  # space pauses both
    wait(browser, lambda d: all(both_times(d)[2:]), 5)
    source, output, _, _ = both_times(browser)
    assert max(gaps) < 0.1, gaps
    assert abs(source - output) < 0.1 and source > 1.3

    browser.find_element(By.ID, "wipe-toggle").click()
    slider = browser.find_element(By.ID, "wipe-slider")
    browser.execute_script("arguments[0].value = 30; arguments[0].dispatchEvent(new Event('input'));", slider)
    clip = browser.execute_script("return document.getElementById('wipe-after').style.clipPath")
    before, after = browser.execute_script("return [document.getElementById('wipe-before').currentTime,"
                                           " document.getElementById('wipe-after').currentTime]")
    assert clip == "inset(0px 0px 0px 30%)" and abs(before - source) < 0.05 and abs(after - source) < 0.05
    save_screenshot(browser, "review-job.png")


def test_approve_and_reject_change_the_record(served, browser, backend, finished_job):
    job_id = finished_job["job_id"]
    open_job(browser, served, job_id)
    browser.find_element(By.ID, "approve").click()
    wait(browser, lambda d: d.find_elements(By.ID, "notice"))
    record = backend.job(job_id)
    assert record.review_status == "approved" and record.reviewed_by == served.reviewer and record.reviewed_at
    assert "approved" in text_of(browser, "#review-state")
    assert job_id in [j.job_id for j in backend.list(status=None, batch=None, since="1h", limit=100, cursor=None,
                                                      review_status="approved").jobs]

    browser.find_element(By.ID, "reject-note").send_keys("The colour bleeds into the sky.")
    browser.find_element(By.ID, "reject").click()
    wait(browser, lambda d: "rejected" in d.find_element(By.ID, "review-state").text)
    record = backend.job(job_id)
    assert (record.review_status, record.review_note) == ("rejected", "The colour bleeds into the sky.")

    browser.find_element(By.TAG_NAME, "body").send_keys("a")  # keyboard: a approves
    wait(browser, lambda d: "approved" in d.find_element(By.ID, "review-state").text)
    assert backend.job(job_id).review_status == "approved"
    browser.find_element(By.TAG_NAME, "body").send_keys("r")  # r rejects
    wait(browser, lambda d: "rejected" in d.find_element(By.ID, "review-state").text)
    assert backend.job(job_id).review_status == "rejected"


def test_j_and_k_walk_the_list(served, browser, finished_job):
    open_job(browser, served, finished_job["job_id"])
    head = browser.find_element(By.CSS_SELECTOR, ".jobhead")
    following, previous = head.get_attribute("data-next"), head.get_attribute("data-prev")
    assert following or previous
    if following:
        browser.find_element(By.TAG_NAME, "body").send_keys("j")
        wait(browser, lambda d: d.current_url.endswith(f"/jobs/{following}"))
        browser.find_element(By.TAG_NAME, "body").send_keys("k")
        wait(browser, lambda d: d.current_url.endswith(f"/jobs/{finished_job['job_id']}"))
    else:
        browser.find_element(By.TAG_NAME, "body").send_keys("k")
        wait(browser, lambda d: d.current_url.endswith(f"/jobs/{previous}"))


def test_try_again_creates_a_linked_job_that_succeeds(served, browser, backend, finished_job):
    open_job(browser, served, finished_job["job_id"])
    prompt = browser.find_element(By.ID, "try-prompt")
    prompt.clear()
    prompt.send_keys("Give @Video1 a cool blue dusk grade. Keep the motion identical.")
    browser.find_element(By.ID, "try-again").click()
    wait(browser, lambda d: "/jobs/" in d.current_url and finished_job["job_id"] not in d.current_url)
    new_id = browser.current_url.rsplit("/", 1)[-1]
    wait(browser, lambda d: d.find_element(By.ID, "job-status").text == "SUCCEEDED", 90)  # live, then reloaded
    record = backend.job(new_id)
    assert record.status.value == "SUCCEEDED" and record.extra["retry_of"] == finished_job["job_id"]
    assert record.prompt.startswith("Give @Video1 a cool blue dusk") and record.output_key != finished_job["output_key"]
    assert finished_job["job_id"] in text_of(browser, "#spec")
    wait(browser, players_ready, 30)  # the new job's page plays its own output next to the same source


def test_promote_to_pro_creates_a_pro_job(served, browser, backend, finished_job, client):
    open_job(browser, served, finished_job["job_id"])
    browser.find_element(By.ID, "promote").click()
    wait(browser, lambda d: "/jobs/" in d.current_url and finished_job["job_id"] not in d.current_url)
    new_id = browser.current_url.rsplit("/", 1)[-1]
    record = backend.job(new_id)
    assert record.mode == "pro" and record.prompt == finished_job["prompt"]
    assert record.extra["retry_of"] == finished_job["job_id"] and record.extra["revision"] == "promote"
    assert client.wait_for_job(new_id, timeout=90)["status"] == "SUCCEEDED"


# --- plan, launch, batch grid -------------------------------------------------------------------


@pytest.fixture(scope="module")
def inbox_clips(stack, sample_clip, tmp_path_factory):
    from local.client import LocalClient
    from local.media import make_sample_clip

    short = tmp_path_factory.mktemp("review") / "short.mp4"
    make_sample_clip(short, seconds=2.0, width=1280, height=720, fps=24, with_audio=False, seed=5)
    s3 = LocalClient(stack.info).s3
    s3.upload_file(str(sample_clip), stack.info["inbox_bucket"], "media/review/good.mp4")
    s3.upload_file(str(short), stack.info["inbox_bucket"], "media/review/short.mp4")


def plan_file(browser, served, path: Path) -> None:
    browser.get(served.url + "/plan")
    browser.find_element(By.ID, "catalog").send_keys(str(path))
    browser.find_element(By.ID, "plan-submit").click()
    wait(browser, lambda d: d.find_elements(By.ID, "plan-rows") or d.find_elements(By.ID, "plan-error"))


def test_a_planned_batch_shows_its_rejected_row_and_total_and_launch_runs_it(served, browser, backend, inbox_clips,
                                                                            tmp_path):
    catalog = tmp_path / "spring.csv"
    catalog.write_text("video_url,prompt,mode,sku\n"
                       f"media/review/good.mp4,{PROMPT},pro,SKU-1\n"
                       f"media/review/short.mp4,{PROMPT},pro,SKU-2\n"
                       f"media/review/good.mp4,{PROMPT},std,SKU-3\n")
    plan_file(browser, served, catalog)
    assert "CLIP_TOO_SHORT" in text_of(browser, "#plan-row-2") and "rejected" in text_of(browser, "#plan-row-2")
    assert text_of(browser, "#plan-total") == "$0.88"  # 3 s x $0.168 + 3 s x $0.126, row 2 costs nothing
    browser.find_element(By.ID, "launch").click()
    wait(browser, lambda d: "/batches/b-" in d.current_url)
    batch_id = browser.current_url.rsplit("/", 1)[-1].split("?")[0]
    wait(browser, lambda d: d.find_elements(By.ID, "batch-counts")
         and d.find_element(By.ID, "batch-counts").text.startswith("3/3 finished"), 120)
    statuses = browser.execute_script(
        "return [1, 2, 3].map(n => document.getElementById('card-' + n).dataset.status)")
    assert statuses == ["SUCCEEDED", "REJECTED", "SUCCEEDED"]
    assert "CLIP_TOO_SHORT" in text_of(browser, "#card-2")
    wait(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)"), 30)

    # Bulk approve (nothing ticked: every unreviewed SUCCEEDED row), then the exports.
    browser.find_element(By.ID, "bulk-approve").click()
    wait(browser, lambda d: "2 approved" in d.find_element(By.ID, "batch-counts").text)
    rows = {j.batch_row: j for j in backend.all_pages(status=None, batch=batch_id, since=None, limit=100)}
    assert rows[1].review_status == rows[3].review_status == "approved" and rows[2].review_status is None
    save_screenshot(browser, "review-batch.png")

    exported = web.get(f"{served.url}/batches/{batch_id}/approved.csv", timeout=30)
    lines = exported.text.strip().splitlines()
    assert exported.status_code == 200 and lines[0].startswith("batch_row,job_id,sku,output_bucket,output_key")
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "3"] and rows[1].output_key in exported.text
    archive = zipfile.ZipFile(io.BytesIO(web.get(f"{served.url}/batches/{batch_id}/approved.zip", timeout=60).content))
    sizes = {info.filename: info.file_size for info in archive.infolist()}
    assert sorted(sizes) == sorted(f"row-0000{n}-{Path(rows[n].output_key).name}" for n in (1, 3))
    assert sizes[f"row-00001-{Path(rows[1].output_key).name}"] == rows[1].output_size

    # Thumbnails were made once and kept in S3.
    kept = backend.s3.list_objects_v2(Bucket=backend.target.outputs_bucket, Prefix="thumbnails/")
    assert {f"thumbnails/{rows[n].job_id}.jpg" for n in (1, 3)} <= {o["Key"] for o in kept.get("Contents", [])}


# --- bad input: a clear message, nothing changed --------------------------------------------------


def test_a_plan_file_that_is_not_a_catalog_or_has_an_unknown_column_is_explained(served, browser, inbox_clips,
                                                                                  tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("video_url,prompt\n")
    plan_file(browser, served, notes)
    assert "INVALID_BATCH_FILE" in text_of(browser, "#plan-error") and not browser.find_elements(By.ID, "launch")

    typo = tmp_path / "typo.csv"
    typo.write_text(f"video_url,promt\nmedia/review/good.mp4,{PROMPT}\n")
    plan_file(browser, served, typo)
    assert "UNKNOWN_COLUMN" in text_of(browser, "#plan-row-1") and "did you mean 'prompt'" in text_of(browser, "#plan-row-1")


def test_an_unknown_job_id_is_a_clear_404(served, browser):
    browser.get(f"{served.url}/jobs/j-{'0' * 32}")
    assert text_of(browser, "#problem h1") == "NOT_FOUND" and "no job" in text_of(browser, "#problem .message")
    assert web.get(f"{served.url}/jobs/j-{'0' * 32}", timeout=30).status_code == 404


def test_a_note_over_the_limit_is_refused_and_changes_nothing(served, browser, backend, finished_job):
    job_id = finished_job["job_id"]
    before = backend.job(job_id)
    open_job(browser, served, job_id)
    browser.execute_script("document.getElementById('reject-note').removeAttribute('maxlength');"
                           "document.getElementById('reject-note').value = 'x'.repeat(2001);")
    browser.find_element(By.ID, "reject").click()
    wait(browser, lambda d: d.find_elements(By.ID, "problem"))
    assert text_of(browser, "#problem h1") == "REVIEW_NOTE_TOO_LONG" and "2000" in text_of(browser, "#problem .message")
    after = backend.job(job_id)
    assert (after.review_status, after.review_note, after.reviewed_at) == (
        before.review_status, before.review_note, before.reviewed_at)


def test_a_forged_post_without_the_csrf_token_changes_nothing(served, backend, finished_job):
    job_id = finished_job["job_id"]
    before = backend.job(job_id)
    forged = web.post(f"{served.url}/jobs/{job_id}/review", data={"review_status": "approved"}, timeout=30)
    assert forged.status_code == 403 and "CSRF_REJECTED" in forged.text and "no CSRF token" in forged.text
    wrong = web.post(f"{served.url}/jobs/{job_id}/review",
                       data={"review_status": "approved", "csrf": "guessed"}, timeout=30)
    assert wrong.status_code == 403
    cross_site = web.post(f"{served.url}/jobs/{job_id}/review", timeout=30,
                            data={"review_status": "approved", "csrf": served.app.guard.csrf_token()},
                            headers={"origin": "https://evil.example"})
    assert cross_site.status_code == 403 and "another site" in cross_site.text
    promote = web.post(f"{served.url}/jobs/{job_id}/promote", timeout=30)
    assert promote.status_code == 403
    after = backend.job(job_id)
    assert (after.review_status, after.reviewed_at) == (before.review_status, before.reviewed_at)


def test_no_secret_reaches_the_page(served, backend, finished_job, stack):
    page = web.get(f"{served.url}/jobs/{finished_job['job_id']}", timeout=30).text
    secret = json.loads(stack.client("secretsmanager").get_secret_value(
        SecretId=stack.info["provider_secret_arn"])["SecretString"])
    for value in secret.values():
        if isinstance(value, str) and len(value) >= 8:
            assert value not in page
    assert "callback_token_hash" not in page and "token=" not in page
    assert "X-Amz-Expires=900" in page.replace("&amp;", "&")  # videos: short-lived presigned URLs only
