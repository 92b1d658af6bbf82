"""Catalog (issue 16): one 10,000-row catalog file run end to end on the local stack.

Setup, as ``bench/load.py``: the local stack (moto server, the real handlers in-process, the real
state machine, the Kling emulator) with ``ProviderConcurrencyLimit`` = G (``--gate``, default 20)
and the emulator's account limit at 4 x G, so only our gate holds concurrency; the emulator renders
by copying (``CLIPEDIT_EMULATOR_RENDER=copy``) and processes each task for ``--processing`` s
(default 0.05); submit concurrency, poll interval, intake visibility timeout and every
backpressure wait are the template's.

The catalog: ``--clips`` (default 20) small valid clips made with PyAV (one clip, each copy made
distinct by a trailing MP4 ``free`` box) are put in the inbox under ``media/catalog/``; rows SHARE
them (row i names clip i mod C), since the pipeline does not care whether two rows name the same
clip and 10,000 distinct uploads would measure S3 rather than the catalog. Then ONE CSV,
``batches/bench-catalog.csv``, with ``--rows`` rows (default 10,000) of ``video_url, sku, prompt,
output_key`` (``output_key`` = ``catalog/{sku}.mp4``, so every row has its own output) is uploaded.

Completion is event-driven: one consumer long-polls the stack's job-events queue (job terminal
events and the ``Batch Completed`` event); a consistent scan of the batch's job records every
``--rescan`` s catches a terminal job whose event was missed. The run ends when every row's job is
terminal and the batch record is COMPLETED (its results file is written before the claim).

Checks (exit 1 if any fails): every row's job exists and is SUCCEEDED; the results file
(``batches/bench-catalog.results.csv``) has the header and exactly one line per row, each with
the row's number, its job id, SUCCEEDED, ``<OutputPrefix>catalog/<sku>.mp4`` and no error; the
batch record counts N SUCCEEDED; exactly one provider task per row (the emulator's task list) and
none for anything else; lost 0 (no record or not terminal) and duplicated 0 (more than one provider
task, more than one output version, more than one SUCCEEDED event, more than one terminal status in
the history).

Figures, all from this one run: rows/s (catalog upload -> last row terminal, from the records),
catalog upload -> results file written (the first complete write, timed by wrapping the recorder's
results writer in this process), upload -> last chunk expanded; and the memory of the expansion:
(a) **tracemalloc peak** of the real ``Intake`` use case expanding the same file alone (parse,
rows, the 100-row chunk messages serialized as the SQS adapter does) with in-memory ports: the
Python heap the intake Lambda needs for it, free of moto's own allocations; (b) the process's RSS
high-water growth during the real ``Intake._batch`` call in the pipeline run (wrapped here; the
whole process, moto included, so an upper bound).

Baselines (same run, same machine): the expansion alone, rows/s (the real use case on the same
file, no AWS calls), and the rate at which the same moto S3 stores N small objects (as many as the
rows' outputs) into a bucket that notifies nobody.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import io
import json
import resource
import shutil
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import (  # noqa: E402
    LogSink,
    iso_to_epoch,
    local_stack,
    make_small_clip,
    proc_status_kb,
    reset_peak_rss,
    row,
    say,
    template_facts,
    use_copy_render,
    write_result,
)

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED"}
CATALOG_KEY = "batches/bench-catalog.csv"
CLIP_PREFIX = "media/catalog/"
PROMPT = "Give @Video1 a warm grade for product {sku}. Keep the subject, motion and camera identical."


# --- the catalog ------------------------------------------------------------------------------


def clip_body(clip: bytes, index: int) -> bytes:
    """The clip plus a top-level MP4 ``free`` box holding the index: a distinct, still valid file."""
    payload = f"clipedit-catalog-{index:04d}".encode()
    return clip + struct.pack(">I", 8 + len(payload)) + b"free" + payload


def sku_for(row_number: int) -> str:
    return f"SKU-{row_number:05d}"


def catalog_csv(rows: int, clips: int) -> bytes:
    """``rows`` data rows (row numbers 1..rows); row i names clip (i - 1) mod ``clips``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["video_url", "sku", "prompt", "output_key"])
    for i in range(1, rows + 1):
        writer.writerow([f"{CLIP_PREFIX}clip-{(i - 1) % clips:03d}.mp4", sku_for(i), PROMPT, "catalog/{sku}.mp4"])
    return buffer.getvalue().encode()


# --- expansion alone: the real use case, in-memory ports ------------------------------------------


class _NoBatches:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def get_batch(self, batch_id: str) -> None:
        return None

    def create_batch(self, record: dict[str, Any]) -> None:
        self.created.append(record)


class _LinesOf:
    """Stands in for the S3 document store: the catalog's bytes, yielded line by line."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def iter_lines(self, ref: Any) -> Iterator[str]:
        yield from io.TextIOWrapper(io.BytesIO(self._data), encoding="utf-8-sig", newline="")

    def read_text(self, ref: Any, *, max_bytes: int) -> None:
        return None  # no presets


class _SerializingQueue:
    """Holds every message body as the JSON text the SQS adapter builds (it holds them all at once)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def send_all(self, bodies: list[dict[str, Any]], *, delay_seconds: int = 0) -> None:
        self.texts = [json.dumps(body, separators=(",", ":")) for body in bodies]


def expand_alone(data: bytes, bucket: str, output_prefix: str, *, trace: bool) -> dict[str, Any]:
    """Run ``Intake.upload`` on the catalog with in-memory ports; with ``trace``, under tracemalloc."""
    from clipedit.domain.spec import SpecDefaults
    from clipedit.usecases.common import StatusRecorder
    from clipedit.domain.uploads import UploadedObject
    from clipedit.usecases.intake import Intake, IntakeSettings
    from clipedit.wiring import SystemClock

    batches, queue = _NoBatches(), _SerializingQueue()
    intake = Intake(jobs=None, batches=batches, documents=_LinesOf(data), queue=queue,  # type: ignore[arg-type]
                    head_metadata=lambda ref: {}, clock=SystemClock(),
                    settings=IntakeSettings(inbox_bucket=bucket, output_prefix=output_prefix, defaults=SpecDefaults()),
                    provider_name="kling", recorder=StatusRecorder(events=None, now=lambda: ""))  # type: ignore[arg-type]
    upload = UploadedObject(bucket=bucket, key=CATALOG_KEY, version_id="expand-alone", etag=None, sequencer=None,
                            size=len(data))
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = intake.upload(upload)
    seconds = time.perf_counter() - started
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    total = int(batches.created[0]["total"]) if batches.created else 0
    return {"seconds": seconds, "rows": total, "messages": len(queue.texts), "detail": result.detail,
            "message_bytes": sum(len(t) for t in queue.texts), "tracemalloc_peak_bytes": peak}


def expansion_alone_figures(data: bytes, rows: int, output_prefix: str) -> dict[str, Any]:
    bucket = "clipedit-bench-catalog-inbox"  # any name: nothing is read or written
    traced = expand_alone(data, bucket, output_prefix, trace=True)
    alone = expand_alone(data, bucket, output_prefix, trace=False)  # timed second: warm, and untraced
    if alone["rows"] != rows or traced["rows"] != rows:
        raise RuntimeError(f"the expansion alone read {alone['rows']} rows, not {rows}: {alone['detail']}")
    figures = {"expand_alone_s": round(alone["seconds"], 3), "expand_alone_rows_per_s": round(rows / alone["seconds"], 1),
               "expand_alone_messages": alone["messages"], "expand_alone_message_bytes": alone["message_bytes"],
               "expand_alone_tracemalloc_peak_mb": round(traced["tracemalloc_peak_bytes"] / 2**20, 2)}
    say(f"  expansion alone: {rows} rows in {alone['seconds']:.2f} s ({figures['expand_alone_rows_per_s']} rows/s), "
        f"{alone['messages']} messages; tracemalloc peak {figures['expand_alone_tracemalloc_peak_mb']} MB")
    return figures


# --- in the pipeline: wraps ------------------------------------------------------------------------


class ExpansionRecorder:
    """Wraps ``Intake._batch`` (the catalog -> batch record + chunk messages) and ``Intake.expand_chunk``
    (a chunk -> job records) in this process (the handlers run here): times, and the process's RSS
    high-water growth during ``_batch`` (VmHWM reset before the call)."""

    def __init__(self) -> None:
        from clipedit.usecases import intake

        self._cls = intake.Intake
        self._batch, self._expand = self._cls._batch, self._cls.expand_chunk
        self.batch_calls: list[dict[str, Any]] = []
        self.chunks: list[tuple[float, float, int]] = []  # (start, end, rows) of every expand_chunk call
        self.chunk_ids: list[tuple[str, int]] = []  # (batch id, chunk) of every call: a repeat is a re-expansion
        self._lock = threading.Lock()
        recorder = self

        def _batch(intake_: Any, upload: Any) -> Any:
            rss0, hwm0 = proc_status_kb("VmRSS"), proc_status_kb("VmHWM")
            hwm_reset = reset_peak_rss()
            started = time.time()
            result = recorder._batch(intake_, upload)
            ended = time.time()
            with recorder._lock:
                recorder.batch_calls.append({"key": upload.key, "start": started, "end": ended, "detail": result.detail,
                                             "rss_before_kb": rss0, "hwm_before_kb": hwm0, "hwm_kb": proc_status_kb("VmHWM"),
                                             "hwm_reset": hwm_reset})
            return result

        def expand_chunk(intake_: Any, message: Any) -> Any:
            started = time.time()
            ids = recorder._expand(intake_, message)
            with recorder._lock:
                recorder.chunks.append((started, time.time(), len(message.get("jobs", []))))
                recorder.chunk_ids.append((str(message.get("batch_id")), int(message.get("chunk", -1))))
            return ids

        self._cls._batch, self._cls.expand_chunk = _batch, expand_chunk

    def undo(self) -> None:
        self._cls._batch, self._cls.expand_chunk = self._batch, self._expand


class ResultsWriteRecorder:
    """Wraps ``StatusRecorder._write_results``: when each complete write of a results file ended."""

    def __init__(self) -> None:
        from clipedit.usecases import common

        self._cls = common.StatusRecorder
        self._write = self._cls._write_results
        self.writes: list[tuple[float, str]] = []
        recorder = self

        def _write_results(status_recorder: Any, batch: dict[str, Any]) -> None:
            recorder._write(status_recorder, batch)
            recorder.writes.append((time.time(), batch["batch_id"]))

        self._cls._write_results = _write_results

    def undo(self) -> None:
        self._cls._write_results = self._write


class CatalogEventWatcher(threading.Thread):
    """Long-polls the job-events queue: each job's first terminal event, SUCCEEDED events per job,
    and the ``Batch Completed`` events."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(name="bench-catalog-events", daemon=True)
        import boto3

        self.sqs = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                         region_name=info["region"]).client("sqs", endpoint_url=info["endpoint_url"])
        self.url = info["events_queue_url"]
        self.lock = threading.Lock()
        self.terminal: dict[str, tuple[str, float]] = {}
        self.succeeded_events: Counter[str] = Counter()
        self.batch_completed: list[tuple[float, dict[str, Any]]] = []
        self.events = 0
        self.wake = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            now = time.time()
            for message in messages:
                body = json.loads(message["Body"])
                detail = body.get("detail", {})
                with self.lock:
                    self.events += 1
                    if body.get("detail-type") == "Batch Completed":
                        self.batch_completed.append((now, detail))
                        continue
                    job_id, status = detail.get("job_id"), detail.get("status")
                    if status == "SUCCEEDED":
                        self.succeeded_events[job_id] += 1
                    if status in TERMINAL and job_id not in self.terminal:
                        self.terminal[job_id] = (status, now)
            if messages:
                self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                self.wake.set()


# --- reading the stack ------------------------------------------------------------------------------


def scan_batch_jobs(client: Any, batch_id: str) -> dict[str, dict[str, Any]]:
    """Every job record of the batch (a consistent scan)."""
    from boto3.dynamodb.types import TypeDeserializer

    from clipedit.adapters.dynamo_jobs import python_value

    deserializer = TypeDeserializer()
    jobs: dict[str, dict[str, Any]] = {}
    for page in client.dynamodb.get_paginator("scan").paginate(
        TableName=client.info["jobs_table"], FilterExpression="batch_id = :b AND attribute_exists(#s)",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":b": {"S": batch_id}}, ConsistentRead=True,
    ):
        for item in page["Items"]:
            job = {k: python_value(deserializer.deserialize(v)) for k, v in item.items()}
            jobs[job["job_id"]] = job
    return jobs


def batch_record(client: Any, batch_id: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    from clipedit.adapters.dynamo_jobs import python_value

    item = client.dynamodb.get_item(TableName=client.info["jobs_table"], Key={"job_id": {"S": f"batch#{batch_id}"}},
                                    ConsistentRead=True).get("Item") or {}
    deserializer = TypeDeserializer()
    return {k: python_value(deserializer.deserialize(v)) for k, v in item.items()}


def output_versions_by_key(client: Any, bucket: str) -> Counter[str]:
    versions: Counter[str] = Counter()
    for page in client.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            versions[version["Key"]] += 1
    return versions


def check_results(text: str, expected: dict[int, tuple[str, str]]) -> list[str]:
    """Problems with the results file: ``expected`` maps row -> (job id, output key)."""
    from clipedit.usecases.common import RESULTS_HEADER

    problems: list[str] = []
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != RESULTS_HEADER:
        problems.append(f"header {header} != {RESULTS_HEADER}")
    seen: Counter[int] = Counter()
    for line_number, cells in enumerate(reader, start=2):
        if len(cells) != len(RESULTS_HEADER):
            problems.append(f"line {line_number}: {len(cells)} cells")
            continue
        record = dict(zip(RESULTS_HEADER, cells))
        try:
            row_number = int(record["row"])
        except ValueError:
            problems.append(f"line {line_number}: row {record['row']!r}")
            continue
        seen[row_number] += 1
        if row_number not in expected:
            problems.append(f"line {line_number}: row {row_number} is not in the catalog")
            continue
        job_id, output_key = expected[row_number]
        got = (record["job_id"], record["status"], record["output_key"], record["error_code"], record["error"])
        if got != (job_id, "SUCCEEDED", output_key, "", ""):
            problems.append(f"line {line_number}: row {row_number} reads {got}, expected {(job_id, 'SUCCEEDED', output_key, '', '')}")
    problems += [f"row {r} appears {n} times" for r, n in sorted(seen.items()) if n > 1]
    missing = sorted(set(expected) - set(seen))
    if missing:
        problems.append(f"{len(missing)} rows missing from the results file, e.g. {missing[:5]}")
    return problems


def store_small_objects(s3: Any, bucket: str, body: bytes, count: int, threads: int) -> float:
    """Seconds for the same moto S3 to store ``count`` objects of ``body`` (the baseline)."""
    def one(i: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"baseline/{i:05d}.mp4", Body=body)

    started = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return time.time() - started


def empty_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        for start in range(0, len(objects), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[start:start + 1000], "Quiet": True})


# --- the run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, clip: bytes, work: Path, output_prefix: str) -> dict[str, Any]:
    from clipedit.domain.keys import job_id_for
    from local.client import LocalClient

    overrides = {"CLIPEDIT_EMULATOR_PROCESSING_SECONDS": str(args.processing),
                 "CLIPEDIT_EMULATOR_CONCURRENCY": str(args.provider_limit), "CLIPEDIT_EMULATOR_SEED": str(args.seed)}
    notes = [use_copy_render(overrides)]
    data = catalog_csv(args.rows, args.clips)
    # First baseline and the expansion's memory: the use case alone on the same bytes, timed, then
    # traced, BEFORE the stack starts (tracemalloc counts every thread's allocations, and moto's
    # and the dispatchers' threads would otherwise land in the peak).
    alone = expansion_alone_figures(data, args.rows, output_prefix)
    stack = local_stack("bench-catalog", work / "state", poll_interval_seconds=args.poll_interval,
                        submit_max_concurrency=args.submit_max_concurrency,
                        visibility_timeout_seconds=args.visibility_timeout, emulator_overrides=overrides,
                        parameter_overrides={"ProviderConcurrencyLimit": str(args.gate)})
    stack.start()
    try:
        client = LocalClient(stack.info)
        inbox = stack.info["inbox_bucket"]
        out: dict[str, Any] = {"notes": notes, "catalog_bytes": len(data)}

        out.update(alone)
        # Second baseline: moto S3 storing as many small objects as the rows' outputs.
        baseline_bucket = f"clipedit-{stack.options.name}-baseline"
        client.s3.create_bucket(Bucket=baseline_bucket)
        stored_s = store_small_objects(client.s3, baseline_bucket, clip_body(clip, 0), args.rows, args.upload_threads)
        out["baseline_s3_objects_per_s"] = round(args.rows / stored_s, 1)
        say(f"  baseline: S3 alone stores {args.rows} objects in {stored_s:.1f} s = {out['baseline_s3_objects_per_s']} objects/s")
        empty_bucket(client.s3, baseline_bucket)  # free moto's memory before the run

        # The clips the rows name, then the catalog (the wraps go on after the expansion-alone runs).
        expansion = ExpansionRecorder()
        results_writes = ResultsWriteRecorder()
        for i in range(args.clips):
            client.s3.put_object(Bucket=inbox, Key=f"{CLIP_PREFIX}clip-{i:03d}.mp4", Body=clip_body(clip, i))
        watcher = CatalogEventWatcher(stack.info)
        watcher.start()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.time()
        response = client.s3.put_object(Bucket=inbox, Key=CATALOG_KEY, Body=data, ContentType="text/csv")
        version = response.get("VersionId") or ""
        batch_id = "b-" + job_id_for(inbox, CATALOG_KEY, version)[2:]
        row_ids = {i: job_id_for(inbox, CATALOG_KEY, f"{version}#row{i}") for i in range(1, args.rows + 1)}
        expected_ids = set(row_ids.values())
        say(f"  catalog of {args.rows} rows ({len(data) / 1024:.0f} KiB) uploaded as batch {batch_id}; "
            "waiting for every row and the results file (event-driven) ...")

        deadline = time.monotonic() + args.timeout
        next_scan = time.monotonic() + args.rescan
        jobs: dict[str, dict[str, Any]] = {}
        batch: dict[str, Any] = {}
        last_report = 0.0
        timed_out = False
        while True:
            with watcher.lock:
                seen_terminal = len(expected_ids.intersection(watcher.terminal))
                completed_event = bool(watcher.batch_completed)
            now = time.monotonic()
            # The records are the truth: read them when the events say the batch completed, and
            # every --rescan seconds (a terminal job or the batch event missed).
            if completed_event or seen_terminal >= args.rows or now >= next_scan:
                batch = batch_record(client, batch_id)
                next_scan = now + args.rescan
                if batch.get("batch_status") == "COMPLETED":
                    jobs = scan_batch_jobs(client, batch_id)
                    if all(j in jobs and jobs[j]["status"] in TERMINAL for j in expected_ids):
                        break
            if now - last_report >= 10:
                last_report = now
                say(f"    {seen_terminal}/{args.rows} terminal events, {len(set(expansion.chunk_ids))} chunks expanded "
                    f"({len(expansion.chunk_ids)} expand calls) "
                    f"after {time.time() - t0:.0f} s")
            if now > deadline:
                timed_out = True
                say(f"    timeout after {args.timeout:.0f} s: the rest count as lost")
                break
            watcher.wake.wait(1.0)
            watcher.wake.clear()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(1.0)  # let the last events arrive before the duplicate count (bounded)
        watcher.stop.set()
        watcher.join(5)

        # --- checks and figures -------------------------------------------------------------------
        jobs = scan_batch_jobs(client, batch_id)
        batch = batch_record(client, batch_id)
        tasks = stack.emulator.tasks()
        tasks_per_job = Counter(t["external_task_id"] for t in tasks)
        versions = output_versions_by_key(client, stack.info["outputs_bucket"])
        expected_output = {i: f"{output_prefix}catalog/{sku_for(i)}.mp4" for i in row_ids}
        statuses: Counter[str] = Counter()
        finalized_by: Counter[str] = Counter()
        slow_rows: list[dict[str, Any]] = []  # SUBMITTED -> terminal longer than half the poll interval
        terminal_at: list[float] = []
        lost = duplicated = 0
        lost_examples: list[dict[str, Any]] = []
        duplicated_examples: list[dict[str, Any]] = []
        wrong: list[dict[str, Any]] = []
        for row_number, job_id in row_ids.items():
            job = jobs.get(job_id)
            status = job["status"] if job else "MISSING"
            statuses[status] += 1
            if status not in TERMINAL:
                lost += 1
                if len(lost_examples) < 5:
                    lost_examples.append({"row": row_number, "status": status, "wait_reason": job and job.get("wait_reason")})
                continue
            history = [h["status"] for h in job["status_history"]]
            terminal_at.append(max(iso_to_epoch(h["at"]) for h in job["status_history"] if h["status"] == status))
            finalized_by[str(job.get("finalized_by"))] += 1
            at = {h["status"]: iso_to_epoch(h["at"]) for h in job["status_history"]}
            if "SUBMITTED" in at and terminal_at[-1] - at["SUBMITTED"] > args.poll_interval / 2:
                slow_rows.append({"row": row_number, "job_id": job_id, "finalized_by": job.get("finalized_by"),
                                  "submitted_to_terminal_s": round(terminal_at[-1] - at["SUBMITTED"], 1)})
            reasons = []
            if tasks_per_job.get(job_id, 0) > 1:
                reasons.append(f"{tasks_per_job[job_id]} provider tasks")
            if versions.get(expected_output[row_number], 0) > 1:
                reasons.append(f"{versions[expected_output[row_number]]} output versions")
            with watcher.lock:
                if watcher.succeeded_events.get(job_id, 0) > 1:
                    reasons.append(f"{watcher.succeeded_events[job_id]} SUCCEEDED events")
            if sum(s in TERMINAL for s in history) > 1:
                reasons.append(f"history {history}")
            if reasons:
                duplicated += 1
                if len(duplicated_examples) < 5:
                    duplicated_examples.append({"row": row_number, "job_id": job_id, "why": reasons})
            mismatch = {k: v for k, v in {
                "status": (status, "SUCCEEDED"), "batch_row": (job.get("batch_row"), row_number),
                "output_key": (job.get("output_key"), expected_output[row_number]),
                "sku": ((job.get("tags") or {}).get("sku"), sku_for(row_number)),
                "provider_tasks": (tasks_per_job.get(job_id, 0), 1),
                "output_versions": (versions.get(expected_output[row_number], 0), 1),
            }.items() if v[0] != v[1]}
            if mismatch:
                wrong.append({"row": row_number, "job_id": job_id, "error": job.get("error_code"), **mismatch})
        foreign_tasks = sum(n for job_id, n in tasks_per_job.items() if job_id not in expected_ids)
        foreign_outputs = sum(n for key, n in versions.items() if key not in set(expected_output.values()))

        results_key = batch.get("results_key", CATALOG_KEY.replace(".csv", ".results.csv"))
        try:
            results_text = client.s3.get_object(Bucket=inbox, Key=results_key)["Body"].read().decode()
        except client.s3.exceptions.NoSuchKey:
            results_text = ""
        results_problems = check_results(results_text, {i: (row_ids[i], expected_output[i]) for i in row_ids}) \
            if results_text else ["no results file"]
        results_lines = max(0, results_text.count("\n") - 1)
        writes = [at for at, b in results_writes.writes if b == batch_id]
        with watcher.lock:
            completed_events = [d for _, d in watcher.batch_completed if d.get("batch_id") == batch_id]
            events = watcher.events
        batch_counts = {k: int(v) for k, v in (batch.get("counts") or {}).items()}
        batch_ok = (batch.get("batch_status") == "COMPLETED" and int(batch.get("total", -1)) == args.rows
                    and batch_counts.get("SUCCEEDED") == args.rows and len(completed_events) == 1)

        t_end = max(terminal_at) if terminal_at else time.time()
        wall = t_end - t0
        in_pipeline = [c for c in expansion.batch_calls if c["key"] == CATALOG_KEY]
        call = in_pipeline[0] if in_pipeline else {}
        chunk_rows = sum(n for _, _, n in expansion.chunks)
        out.update({
            "rows": args.rows, "clips": args.clips, "gate": args.gate, "provider_limit": args.provider_limit,
            "batch_id": batch_id, "timed_out": timed_out,
            "wall_s": round(wall, 2), "rows_per_s": round(len(terminal_at) / wall, 2) if wall > 0 else None,
            "upload_to_results_file_s": round(min(writes) - t0, 2) if writes else None,
            "results_file_writes": len(writes),
            "upload_to_batch_record_completed_s": round(iso_to_epoch(batch["completed_at"]) - t0, 2)
            if batch.get("completed_at") else None,
            "expansion_calls": len(in_pipeline),
            "upload_to_expansion_start_s": round(call["start"] - t0, 2) if call else None,
            "expansion_call_s": round(call["end"] - call["start"], 3) if call else None,
            "expansion_rss_growth_mb": round((call["hwm_kb"] - call["rss_before_kb"]) / 1024, 1)
            if call and call["hwm_reset"] else None,
            "chunks_expanded": len({c for b, c in expansion.chunk_ids if b == batch_id}),
            "chunk_expand_calls": sum(1 for b, _ in expansion.chunk_ids if b == batch_id), "chunk_rows": chunk_rows,
            "upload_to_last_chunk_expanded_s": round(max(e for _, e, _ in expansion.chunks) - t0, 2)
            if expansion.chunks else None,
            "statuses": dict(statuses), "finalized_by": dict(finalized_by),
            "rows_waiting_a_poll_interval": len(slow_rows), "slow_row_examples": slow_rows[:5], "lost": lost, "duplicated": duplicated,
            "lost_examples": lost_examples, "duplicated_examples": duplicated_examples,
            "rows_wrong": len(wrong), "wrong_examples": wrong[:5],
            "provider_tasks": len(tasks), "rows_with_one_task": sum(1 for j in expected_ids if tasks_per_job.get(j) == 1),
            "foreign_provider_tasks": foreign_tasks, "output_versions": sum(versions.values()),
            "foreign_output_versions": foreign_outputs,
            "results_lines": results_lines, "results_problems": len(results_problems),
            "results_problem_examples": results_problems[:5],
            "batch_status": batch.get("batch_status"), "batch_total": batch.get("total"), "batch_counts": batch_counts,
            "batch_completed_events": len(completed_events), "batch_ok": batch_ok,
            "peak_concurrent_provider_tasks": stack.emulator.stats()["max_concurrent_observed"],
            "job_events": events,
            "process_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 1),
            # The expansion's VmHWM reset also resets ru_maxrss: the process peak is the larger of the two.
            "peak_rss_mb": round(max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]
                                     + [c["hwm_before_kb"] for c in expansion.batch_calls]) / 1024, 1),
        })
        expansion.undo()
        results_writes.undo()
        return out
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    from local.template import load_template, parameter_defaults

    facts = template_facts()
    output_prefix = parameter_defaults(load_template()).get("OutputPrefix", "edited/")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="1,000 rows")
    parser.add_argument("--rows", type=int, help="catalog rows (default 10,000; --quick 1,000)")
    parser.add_argument("--clips", type=int, default=20, help="distinct clips the rows share (row i names clip i mod C)")
    parser.add_argument("--gate", type=int, default=20, help="ProviderConcurrencyLimit (default 20)")
    parser.add_argument("--provider-limit", type=int, help="the emulator's account concurrency (default 4 x gate)")
    parser.add_argument("--processing", type=float, default=0.05, help="the emulator's processing time per task (s)")
    parser.add_argument("--submit-max-concurrency", type=int, default=facts["submit_max_concurrency"],
                        help=f"submit concurrency (default: the template's {facts['submit_max_concurrency']})")
    parser.add_argument("--poll-interval", type=int, default=facts["poll_interval_seconds"],
                        help=f"poller interval (default: the template's {facts['poll_interval_seconds']} s)")
    parser.add_argument("--visibility-timeout", type=int, default=facts["intake_visibility_timeout_s"],
                        help=f"intake visibility timeout (default: the template's {facts['intake_visibility_timeout_s']} s; "
                             "the local stack's own default, 30 s, lets a slow batch of chunk messages come back "
                             "and be expanded again)")
    parser.add_argument("--upload-threads", type=int, default=16, help="threads for the S3 baseline")
    parser.add_argument("--rescan", type=float, default=30.0, help="seconds between consistent reads of the batch")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=7200.0, help="give up (and count the rest as lost) after this")
    args = parser.parse_args(argv)
    args.rows = args.rows or (1000 if args.quick else 10_000)
    args.provider_limit = args.provider_limit or 4 * args.gate
    if args.provider_limit <= args.gate:
        parser.error("--provider-limit must be above --gate, so that only the gate holds concurrency")
    if not 1 <= args.clips <= 1000 or args.rows < 1:
        parser.error("--rows >= 1 and 1 <= --clips <= 1000")

    work = Path(tempfile.mkdtemp(prefix="clipedit-bench-catalog-"))
    atexit.register(shutil.rmtree, work, True)
    clip = make_small_clip(work / "clip.mp4").read_bytes()
    sink = LogSink()
    with sink.installed():
        say(f"catalog: {args.rows} rows sharing {args.clips} clips (gate {args.gate}, provider limit "
            f"{args.provider_limit}, submit concurrency {args.submit_max_concurrency}, processing {args.processing} s, "
            f"poll interval {args.poll_interval} s, visibility {args.visibility_timeout} s)")
        r = run(args, clip, work, output_prefix)
    notes = r.pop("notes")

    clean = (r["lost"] == 0 and r["duplicated"] == 0 and r["rows_wrong"] == 0 and r["results_problems"] == 0
             and r["foreign_provider_tasks"] == 0 and r["foreign_output_versions"] == 0 and r["batch_ok"]
             and r["expansion_calls"] == 1 and not r["timed_out"])
    say(f"  {r['rows_per_s']} rows/s over {r['wall_s']} s; results file after {r['upload_to_results_file_s']} s "
        f"({r['results_lines']} lines, {r['results_problems']} problems); lost {r['lost']}, duplicated {r['duplicated']}, "
        f"wrong {r['rows_wrong']}")
    name = f"16 catalog, {args.rows} rows, gate {args.gate}"
    expansion_ratio = r["expansion_call_s"] / r["expand_alone_s"] if r["expansion_call_s"] and r["expand_alone_s"] else None
    rows = [
        row(name, f"{r['rows_per_s']:.2f} rows/s end to end (catalog upload -> last row terminal, {r['wall_s']:.1f} s)",
            f"S3 alone stores {r['baseline_s3_objects_per_s']:.1f} objects/s",
            r["rows_per_s"] / r["baseline_s3_objects_per_s"] if r["rows_per_s"] else None, "(no target)", None),
        row(f"{name}: results file", f"written {r['upload_to_results_file_s']} s after the upload; "
                                     f"{r['results_lines']} lines, {r['results_problems']} problems",
            f"last row terminal at {r['wall_s']:.1f} s", None, f"{args.rows} correct lines",
            r["results_problems"] == 0 and r["results_lines"] == args.rows),
        row(f"{name}: expansion", f"tracemalloc peak {r['expand_alone_tracemalloc_peak_mb']} MB (the use case alone); "
                                  f"RSS growth {r['expansion_rss_growth_mb']} MB in the pipeline (whole process); "
                                  f"last chunk expanded {r['upload_to_last_chunk_expanded_s']} s after the upload",
            f"the same expansion alone: {r['expand_alone_s']:.2f} s ({r['expand_alone_rows_per_s']:.0f} rows/s)",
            expansion_ratio, "(no target)", None,
            f"{expansion_ratio:.2f} (pipeline call / alone)" if expansion_ratio else None),
        row(f"{name}: lost / duplicated", f"lost {r['lost']}, duplicated {r['duplicated']}, wrong {r['rows_wrong']} "
                                          f"({', '.join(f'{k} {v}' for k, v in sorted(r['statuses'].items()))})",
            f"{r['provider_tasks']} provider tasks, {r['rows_with_one_task']} rows with exactly one; "
            f"{r['output_versions']} output versions", None, "0 / 0, one task per row", clean),
    ]
    notes.append(f"machine: {__import__('os').cpu_count()} cores; process CPU {r['process_cpu_s']} s during the run; "
                 f"peak RSS {r['peak_rss_mb']} MB")
    came_back = (" (more calls than chunks: a chunk message came back)"
                 if r["chunk_expand_calls"] > r["chunks_expanded"] else "")
    notes.append(f"catalog {r['catalog_bytes']} bytes; expansion alone: {r['expand_alone_s']} s, "
                 f"{r['expand_alone_messages']} messages, {r['expand_alone_message_bytes']} bytes of message text; "
                 f"in the pipeline: {r['expansion_calls']} expansion call(s) of {r['expansion_call_s']} s, started "
                 f"{r['upload_to_expansion_start_s']} s after the upload; {r['chunks_expanded']} chunks expanded "
                 f"by {r['chunk_expand_calls']} calls{came_back}, {r['chunk_rows']} rows")
    notes.append(f"batch record: {r['batch_status']}, total {r['batch_total']}, counts {r['batch_counts']}; "
                 f"{r['batch_completed_events']} Batch Completed event(s); results file written {r['results_file_writes']} time(s); "
                 f"record COMPLETED {r['upload_to_batch_record_completed_s']} s after the upload")
    notes.append(f"finalized by: {r['finalized_by']}; {r['rows_waiting_a_poll_interval']} rows took more than half "
                 f"the poll interval ({args.poll_interval} s) from SUBMITTED to terminal, i.e. their callback did not "
                 f"end the wait: {r['slow_row_examples']}")
    notes.append(f"peak concurrent provider tasks {r['peak_concurrent_provider_tasks']} (gate {args.gate})")
    if r["lost_examples"] or r["duplicated_examples"] or r["wrong_examples"] or r["results_problem_examples"]:
        notes.append(f"lost: {r['lost_examples']}; duplicated: {r['duplicated_examples']}; wrong: {r['wrong_examples']}; "
                     f"results file: {r['results_problem_examples']}")
    if sink.messages:
        notes.append("handler warnings: " + "; ".join(f"{k} x{v}" for k, v in sorted(sink.messages.items())[:20]))
    details = {"settings": {k: v for k, v in vars(args).items() if k != "json"}, "run": r,
               "handler_log_bytes": sink.bytes, "handler_warnings": sink.messages}
    write_result(args.json, "catalog", rows, details, notes)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
