"""Load (issue 4): N distinct uploads at once through the local stack, behind our concurrency gate.

Our gate is the only thing holding the provider back; ``--faults`` adds the chaos test's fault mix.

Setup: the local stack (moto server, the real handlers in-process, the real state machine, the Kling
emulator) with ``ProviderConcurrencyLimit`` = G (``--gate``, default: the template's) and the
emulator's account limit well above it (``--provider-limit``, default 4 x G), so a 1303 answer or a
peak above G would mean our gate leaked. The emulator processes for a short time and renders by
copying (``CLIPEDIT_EMULATOR_RENDER=copy``); submit concurrency, poll interval and every backpressure
wait are the template's unless given. N distinct clips (one small valid clip, each copy made unique
by a trailing MP4 ``free`` box holding its index, built per upload: memory stays bounded) are
uploaded by a thread pool as fast as the local S3 takes them.

``--faults`` adds the fault mix of ``tests/integration/test_chaos.py``: 20 % of Kling API calls
answer 5xx, 5 % of accepted creates lose their answer, 5 % of tasks fail, 50 % of callbacks are
dropped and 20 % duplicated, 10 % of result copies crash the finalize process mid-copy; with the
chaos test's short waits (retry 1-4 s, gate re-check 30 s, breaker cool-down 2 s, finalize lease
3 s, poll interval 1 s, intake visibility 5 s) so the run takes minutes.

Completion is event-driven: one consumer long-polls the stack's job-events queue; a consistent scan
of the jobs table every ``--rescan`` seconds (default 30) catches a terminal job whose event was
missed. Figures, all from this one run: jobs/s (first upload -> last terminal, from the records),
p50/p95 upload -> terminal, provider API calls per job by kind (counted on the wire at the emulator:
creates, queries by task id, lookups by external id; and at ``KlingProvider``'s methods), peak
concurrent provider tasks vs G, 1303 answers, lost jobs (no record, or not terminal) and duplicated
jobs (more than one provider task, more than one output object version, more than one SUCCEEDED
event or more than one terminal status in the history). Lost and duplicated must both be 0: the
script exits 1 otherwise.

Gate hand-offs: the provider gate's acquires (granted or refused) and releases are recorded in
this process; a job waits from its first refused acquire to its granted one, and each release that
found a job waiting is matched, in time order, with the earliest SUBMITTED among the jobs waiting
then: p50/p95 of slot free -> that SUBMITTED (target p95 <= 5 s: a freed slot's wake-up must not
queue behind the upload backlog).

Baselines (same run, same moto): the rate at which S3 alone stores the same N bodies into a bucket
that notifies nobody; and the gate's ceiling G / mean slot time (a job's SUBMITTED -> terminal),
whose ratio to the measured rate says how busy the gate's slots were.
"""

from __future__ import annotations

import argparse
import atexit
import resource
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import (  # noqa: E402
    InvocationTimer,
    LogSink,
    classify_invocation,
    iso_to_epoch,
    local_stack,
    make_small_clip,
    median,
    percentile,
    row,
    say,
    template_facts,
    use_copy_render,
    write_result,
)
from bench.throughput import EventWatcher, ProviderCallCounter  # noqa: E402

PROMPT = "Give @Video1 a warm grade. Keep the subject, motion and camera identical."
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED"}
PREFIX = "incoming/load/"

# The chaos test's fault mix and short waits (tests/integration/test_chaos.py), without its N and gate.
FAULT_EMULATOR = {
    "CLIPEDIT_EMULATOR_ERROR_RATE": "0.2",
    "CLIPEDIT_EMULATOR_LOST_RESPONSE_RATE": "0.05",
    "CLIPEDIT_EMULATOR_FAIL_RATE": "0.05",
    "CLIPEDIT_EMULATOR_DROP_CALLBACK_RATE": "0.5",
    "CLIPEDIT_EMULATOR_DUPLICATE_CALLBACK_RATE": "0.2",
}
FAULT_FUNCTION_ENV = {"RETRY_BASE_SECONDS": "1", "RETRY_MAX_SECONDS": "4", "GATE_RECHECK_SECONDS": "30",
                      "BREAKER_COOLDOWN_SECONDS": "2", "FINALIZE_LEASE_SECONDS": "3"}
FAULT_FINALIZE_CRASH_RATE = 0.1


class GateRecorder:
    """Records every acquire (granted or refused), every hand-over (``transfer_slot``) and every
    release of the provider gate's slots, wrapping ``DynamoProviderGuard`` in this process (the
    handlers run here)."""

    def __init__(self) -> None:
        from clipedit.adapters import dynamo_jobs

        self.acquires: list[tuple[float, str, bool]] = []
        self.transfers: list[tuple[float, str, str]] = []  # (at, from, to), moved ones only
        self.releases: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._cls = dynamo_jobs.DynamoProviderGuard
        self._originals = (self._cls.acquire_slot, self._cls.transfer_slot, self._cls.release_slot)
        original_acquire, original_transfer, original_release = self._originals
        recorder = self

        def acquire_slot(guard: Any, provider: str, job_id: str, **kwargs: Any) -> bool:
            granted = original_acquire(guard, provider, job_id, **kwargs)
            with recorder._lock:
                recorder.acquires.append((time.time(), job_id, granted))
            return granted

        def transfer_slot(guard: Any, provider: str, from_job_id: str, to_job_id: str, **kwargs: Any) -> bool:
            at = time.time()  # the heir holds the slot from this write on
            moved = original_transfer(guard, provider, from_job_id, to_job_id, **kwargs)
            if moved:
                with recorder._lock:
                    recorder.transfers.append((at, from_job_id, to_job_id))
            return moved

        def release_slot(guard: Any, provider: str, job_id: str) -> bool:
            released = original_release(guard, provider, job_id)
            if released:
                with recorder._lock:
                    recorder.releases.append((time.time(), job_id))
            return released

        self._cls.acquire_slot, self._cls.transfer_slot, self._cls.release_slot = acquire_slot, transfer_slot, release_slot

    def undo(self) -> None:
        self._cls.acquire_slot, self._cls.transfer_slot, self._cls.release_slot = self._originals


@dataclass
class HandOffs:
    to_waiting: list[float] = field(default_factory=list)  # slot free -> a waiting job's SUBMITTED
    transferred: list[float] = field(default_factory=list)  # of those, slots handed straight to the heir
    to_newcomers: list[float] = field(default_factory=list)  # freed while jobs waited, taken by one that had not


def slot_handoffs(gate: GateRecorder, submitted_at: dict[str, float]) -> HandOffs:
    """Follows each slot from the moment its holder gives it up to the SUBMITTED of the job that
    takes it, counting only slots given up while at least one job was waiting on the gate.

    A job waits from its first refused acquire until it holds a slot. A slot is given up either by
    a hand-over (the ending job adds its heir, then lets go: the slot is free from the hand-over's
    write, and its next job is the heir) or by a plain release, which frees it for whichever job
    next takes a slot with a granted acquire (paired in time order: takes after frees, first come
    first served). A slot that a job which never waited takes is reported apart (``to_newcomers``):
    it did not sit idle, but it did not serve a waiting job either."""
    first_refused: dict[str, float] = {}
    for at, job_id, ok in sorted(gate.acquires):
        if not ok:
            first_refused.setdefault(job_id, at)
    events = ([(at, 0, "transfer", to, frm) for at, frm, to in gate.transfers]
              + [(at, 1, "acquire", job_id, "") for at, job_id, ok in gate.acquires if ok]
              + [(at, 2, "release", job_id, "") for at, job_id in gate.releases])
    holders: set[str] = set()
    handed_over: set[str] = set()  # ending jobs whose release after the hand-over frees nothing
    served: set[str] = set()  # jobs holding a slot now or before: no longer waiting
    free_since: list[float] = []  # slots freed by a plain release while jobs waited, oldest first
    result = HandOffs()

    def someone_waiting(at: float) -> bool:
        return any(t <= at and j not in served for j, t in first_refused.items())

    for at, _order, kind, job_id, source in sorted(events):
        if kind == "transfer":
            if job_id in holders:
                continue  # the heir took a slot itself meanwhile: the release after this one frees it
            holders.add(job_id)
            handed_over.add(source)
            if job_id not in served and job_id in submitted_at:
                result.to_waiting.append(max(0.0, submitted_at[job_id] - at))
                result.transferred.append(result.to_waiting[-1])
            served.add(job_id)
        elif kind == "acquire":
            if job_id in holders:
                continue  # already holds one (an heir submitting): not a new take
            holders.add(job_id)
            waited = job_id in first_refused and job_id not in served
            served.add(job_id)
            if free_since and job_id in submitted_at:
                delay = max(0.0, submitted_at[job_id] - free_since.pop(0))
                (result.to_waiting if waited else result.to_newcomers).append(delay)
        else:
            holders.discard(job_id)
            if job_id in handed_over:
                handed_over.discard(job_id)
            elif someone_waiting(at):
                free_since.append(at)
    return result


def fifo_handoffs(gate: GateRecorder, submitted_at: dict[str, float]) -> list[float]:
    """The previous figure, kept to compare with: each release that found a job waiting is matched,
    in time order, with the earliest not-yet-matched SUBMITTED among the jobs waiting then. It drifts
    when a freed slot goes to a job that never waited (every later release is then matched one job
    too late), so it overstates the wait; ``slot_handoffs`` follows the slots instead."""
    first_refused: dict[str, float] = {}
    granted: dict[str, float] = {}
    for at, job_id, ok in sorted(gate.acquires):
        if ok:
            granted.setdefault(job_id, at)
        elif job_id not in granted:
            first_refused.setdefault(job_id, at)
    waiters = sorted((submitted_at[j], first_refused[j], j) for j in first_refused
                     if j in granted and j in submitted_at)
    matched: set[str] = set()
    delays: list[float] = []
    for released_at, _holder in sorted(gate.releases):
        for submitted, refused, job_id in waiters:
            if job_id in matched or not (refused <= released_at < granted[job_id]):
                continue
            matched.add(job_id)
            delays.append(max(0.0, submitted - released_at))
            break
    return delays


def template_gate() -> int:
    from local.template import load_template, parameter_defaults

    return int(parameter_defaults(load_template()).get("ProviderConcurrencyLimit", 5))


def unique_body(clip: bytes, index: int) -> bytes:
    """The clip plus a top-level MP4 ``free`` box holding the index: a distinct, still valid file."""
    payload = f"clipedit-load-{index:06d}".encode()
    return clip + struct.pack(">I", 8 + len(payload)) + b"free" + payload


class WireCounter:
    """Counts the HTTP requests the emulator receives, by kind, before it answers (injected 5xx included)."""

    def __init__(self, emulator: Any) -> None:
        from local import kling_emulator

        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._emulator = emulator
        api, elements = kling_emulator.API_PATH, kling_emulator.ELEMENTS_PATH
        original = emulator._handle

        def handle(req: Any, method: str) -> None:
            parts = urlsplit(req.path)
            path = parts.path.rstrip("/")
            if path == api and method == "POST":
                kind = "create"
            elif path == api and "external_task_id" in parse_qs(parts.query):
                kind = "lookup (external id, query form)"
            elif path == api:
                kind = "list"
            elif path.startswith(api + "/"):
                ident = unquote(path[len(api) + 1:])
                kind = "query (task id)" if ident in emulator._tasks else "lookup (external id, path form)"
            elif path.startswith(elements):
                kind = "elements"
            elif path.startswith("/results/"):
                kind = "result download"
            else:
                kind = f"other {method} {path}"
            with self._lock:
                self.counts[kind] += 1
            original(req, method)

        emulator._handle = handle  # the request handler calls server.emulator._handle(...)

    def api_calls(self) -> Counter[str]:
        return Counter({k: v for k, v in self.counts.items() if k != "result download"})


def upload_all(s3: Any, bucket: str, clip: bytes, count: int, threads: int) -> tuple[dict[str, tuple[str, float]], float, float]:
    """Put ``count`` distinct bodies under distinct keys; returns ({job id: (key, start)}, t0, t1). The
    job id is the pipeline's own (bucket, key, version id), as ``LocalClient.upload_clip`` derives it."""
    from clipedit.domain.keys import job_id_for

    starts: dict[str, tuple[str, float]] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        key = f"{PREFIX}clip-{i:05d}.mp4"
        started = time.time()
        response = s3.put_object(Bucket=bucket, Key=key, Body=unique_body(clip, i), Metadata={"prompt": PROMPT})
        job_id = job_id_for(bucket, key, response.get("VersionId") or "")
        with lock:
            starts[job_id] = (key, started)

    t0 = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return starts, t0, time.time()


def scan_jobs(client: Any) -> dict[str, dict[str, Any]]:
    """Every job record of this run (a consistent scan; the guard items have no ``input_key``)."""
    from boto3.dynamodb.types import TypeDeserializer

    from clipedit.adapters.dynamo_jobs import python_value

    deserializer = TypeDeserializer()
    jobs: dict[str, dict[str, Any]] = {}
    for page in client.dynamodb.get_paginator("scan").paginate(
        TableName=client.info["jobs_table"], FilterExpression="begins_with(input_key, :p) AND attribute_exists(#s)",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":p": {"S": PREFIX}}, ConsistentRead=True,
    ):
        for item in page["Items"]:
            job = {k: python_value(deserializer.deserialize(v)) for k, v in item.items()}
            jobs[job["job_id"]] = job
    return jobs


def output_versions(client: Any, bucket: str) -> tuple[Counter[str], int]:
    """Output object versions per owning job (the ``job-id`` metadata), and versions with no owner."""
    owners: Counter[str] = Counter()
    unowned = 0
    versions = [v for page in client.s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
                for v in page.get("Versions", [])]

    def owner(version: dict[str, Any]) -> str | None:
        head = client.s3.head_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        return head.get("Metadata", {}).get("job-id")

    with ThreadPoolExecutor(8) as pool:
        for job_id in pool.map(owner, versions):
            if job_id:
                owners[job_id] += 1
            else:
                unowned += 1
    return owners, unowned


def run(args: argparse.Namespace, clip: bytes, work: Path) -> dict[str, Any]:
    from local.client import LocalClient

    overrides = {"CLIPEDIT_EMULATOR_PROCESSING_SECONDS": str(args.processing),
                 "CLIPEDIT_EMULATOR_CONCURRENCY": str(args.provider_limit), "CLIPEDIT_EMULATOR_SEED": str(args.seed)}
    notes = [use_copy_render(overrides)]
    function_env: dict[str, str] = {}
    if args.faults:
        overrides.update(FAULT_EMULATOR)
        function_env.update(FAULT_FUNCTION_ENV)
    stack = local_stack("bench-load-faults" if args.faults else "bench-load", work / "state",
                        poll_interval_seconds=args.poll_interval, submit_max_concurrency=args.submit_max_concurrency,
                        visibility_timeout_seconds=args.visibility_timeout, emulator_overrides=overrides,
                        parameter_overrides={"ProviderConcurrencyLimit": str(args.gate)},
                        function_environment=function_env,
                        finalize_crash_rate=FAULT_FINALIZE_CRASH_RATE if args.faults else 0.0, crash_seed=args.seed)
    stack.start()
    try:
        timer = InvocationTimer(stack, classify_invocation)
        adapter_calls = ProviderCallCounter()
        gate = GateRecorder()
        wire = WireCounter(stack.emulator)
        client = LocalClient(stack.info)
        out: dict[str, Any] = {"notes": notes}

        # Baseline, same moto, same pool, same bodies: S3 alone, into a bucket that notifies nobody.
        baseline_bucket = f"clipedit-{stack.options.name}-baseline"
        client.s3.create_bucket(Bucket=baseline_bucket)
        _, b0, b1 = upload_all(client.s3, baseline_bucket, clip, args.jobs, args.upload_threads)
        out["baseline_uploads_per_s"] = round(args.jobs / (b1 - b0), 2)
        say(f"  baseline: S3 alone stores {args.jobs} uploads in {b1 - b0:.1f} s = {args.jobs / (b1 - b0):.1f} uploads/s")
        for page in client.s3.get_paginator("list_object_versions").paginate(Bucket=baseline_bucket):
            for v in page.get("Versions", []):  # free moto's memory before the run
                client.s3.delete_object(Bucket=baseline_bucket, Key=v["Key"], VersionId=v["VersionId"])

        watcher = EventWatcher(stack.info, set())
        watcher.start()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        starts, t0, t_uploaded = upload_all(client.s3, stack.info["inbox_bucket"], clip, args.jobs, args.upload_threads)
        with watcher.lock:
            watcher.expected = set(starts)
            if watcher.expected <= set(watcher.terminal):
                watcher.done.set()
        say(f"  {args.jobs} uploads in {t_uploaded - t0:.1f} s; waiting for every job to end (event-driven) ...")

        deadline = time.monotonic() + args.timeout
        next_scan = time.monotonic() + args.rescan
        jobs: dict[str, dict[str, Any]] = {}
        last_report = 0.0
        while True:
            with watcher.lock:
                seen_terminal = set(watcher.terminal) & set(starts)
            now = time.monotonic()
            # The records are the truth: read them when the events say every job ended, and every
            # --rescan seconds (a terminal job whose event was missed).
            if len(seen_terminal) >= args.jobs or now >= next_scan:
                jobs = scan_jobs(client)
                next_scan = now + args.rescan
                if all(j in jobs and jobs[j]["status"] in TERMINAL for j in starts):
                    break
            if now - last_report >= 10:
                last_report = now
                say(f"    {len(seen_terminal)}/{args.jobs} terminal events after {time.time() - t0:.0f} s")
            if now > deadline:
                jobs = scan_jobs(client)
                say(f"    timeout after {args.timeout:.0f} s: the rest count as lost")
                break
            watcher.done.wait(1.0)  # woken when the last terminal event arrives; else re-checks each second
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        if args.faults:
            try:
                stack.emulator.wait_for_callbacks(timeout=30)  # late duplicate callbacks must find the job ended
            except TimeoutError as error:
                notes.append(f"callbacks still pending at the end: {error}")
        time.sleep(1.0)  # let the last events arrive before the duplicate count (bounded)
        watcher.stop.set()
        watcher.join(5)
        with watcher.lock:
            succeeded_events = dict(watcher.succeeded_events)
            events = watcher.events

        # --- figures ------------------------------------------------------------------------------
        jobs = scan_jobs(client)
        tasks = stack.emulator.tasks()
        stats = stack.emulator.stats()
        tasks_per_job = Counter(t["external_task_id"] for t in tasks)
        task_by_job = {t["external_task_id"]: t for t in tasks}
        versions_per_job, unowned_versions = output_versions(client, stack.info["outputs_bucket"])
        dlq = int(client.sqs.get_queue_attributes(QueueUrl=stack.info["dead_letter_queue_url"],
                                                  AttributeNames=["ApproximateNumberOfMessages"])
                  ["Attributes"]["ApproximateNumberOfMessages"])

        statuses: Counter[str] = Counter()
        latencies: list[float] = []
        terminal_at: list[float] = []
        slot_seconds: list[float] = []
        stages: dict[str, list[float]] = defaultdict(list)
        lost_examples, duplicated_examples, inconsistent = [], [], []
        lost = duplicated = 0
        for job_id, (key, started) in starts.items():
            job = jobs.get(job_id)
            status = job["status"] if job else "MISSING"
            statuses[status] += 1
            if status not in TERMINAL:
                lost += 1
                if len(lost_examples) < 5:
                    lost_examples.append({"key": key, "status": status, "wait_reason": job and job.get("wait_reason")})
                continue
            history = [h["status"] for h in job["status_history"]]
            reasons = []
            if tasks_per_job.get(job_id, 0) > 1:
                reasons.append(f"{tasks_per_job[job_id]} provider tasks")
            if versions_per_job.get(job_id, 0) > 1:
                reasons.append(f"{versions_per_job[job_id]} output versions")
            if succeeded_events.get(job_id, 0) > 1:
                reasons.append(f"{succeeded_events[job_id]} SUCCEEDED events")
            if sum(s in TERMINAL for s in history) > 1:
                reasons.append(f"history {history}")
            if reasons:
                duplicated += 1
                if len(duplicated_examples) < 5:
                    duplicated_examples.append({"job_id": job_id, "why": reasons})
            # Consistency with the provider's own record (as the chaos test checks).
            task = task_by_job.get(job_id)
            if (status == "SUCCEEDED" and not (task and task["status"] == "succeed" and versions_per_job.get(job_id) == 1)) or \
               (status == "FAILED" and not (task and task["status"] == "failed")) or status in ("TIMED_OUT", "REJECTED"):
                inconsistent.append({"job_id": job_id, "status": status, "task": task and task["status"],
                                     "error": job.get("error_code")})
            at = {h["status"]: iso_to_epoch(h["at"]) for h in job["status_history"]}
            end = at[status]
            terminal_at.append(end)
            latencies.append(end - started)
            if "SUBMITTED" in at:
                slot_seconds.append(end - at["SUBMITTED"])
            previous, previous_t = "upload", started
            for s in ("RECEIVED", "QUEUED", "SUBMITTED", "PROCESSING", status):
                if s in at:
                    stages[f"{previous}->{s}"].append(at[s] - previous_t)
                    previous, previous_t = s, at[s]
        submitted_at = {job_id: iso_to_epoch(h["at"]) for job_id, job in jobs.items()
                        for h in job["status_history"] if h["status"] == "SUBMITTED"}
        handoffs = slot_handoffs(gate, submitted_at)
        fifo = fifo_handoffs(gate, submitted_at)
        plain = sorted(handoffs.to_waiting)
        for delay in handoffs.transferred:
            plain.remove(delay)  # what is left: slots freed by a plain release, then taken by a waiting job
        t_end = max(terminal_at) if terminal_at else time.time()
        wall = t_end - t0
        done = len(terminal_at)
        mean_slot = sum(slot_seconds) / len(slot_seconds) if slot_seconds else float("nan")
        gate_ceiling = args.gate / mean_slot if slot_seconds else float("nan")
        invocations: dict[str, dict[str, float]] = {}
        for kind in sorted({r["kind"] for r in timer.records}):
            durations = [r["seconds"] for r in timer.records if r["kind"] == kind]
            invocations[kind] = {"count": len(durations), "per_job": round(len(durations) / args.jobs, 3),
                                 "median_ms": round(median(durations) * 1000, 1),
                                 "p95_ms": round(percentile(durations, 95) * 1000, 1),
                                 "failed": sum(1 for r in timer.records if r["kind"] == kind and not r["ok"])}
        api = wire.api_calls()
        out.update({
            "jobs": args.jobs, "gate": args.gate, "provider_limit": args.provider_limit,
            "uploads_s": round(t_uploaded - t0, 2), "wall_s": round(wall, 2),
            "jobs_per_s": round(done / wall, 3) if wall > 0 else None,
            "latency_p50_s": round(percentile(latencies, 50), 2), "latency_p95_s": round(percentile(latencies, 95), 2),
            "latency_max_s": round(max(latencies), 2) if latencies else None,
            "slot_free_to_submitted_n": len(handoffs.to_waiting),
            "slot_free_to_submitted_by_transfer": len(handoffs.transferred),
            "by_transfer_p95_s": round(percentile(handoffs.transferred, 95), 2) if handoffs.transferred else None,
            "by_release_p95_s": round(percentile(plain, 95), 2) if plain else None,
            "slot_free_to_submitted_p50_s": round(percentile(handoffs.to_waiting, 50), 2) if handoffs.to_waiting else None,
            "slot_free_to_submitted_p95_s": round(percentile(handoffs.to_waiting, 95), 2) if handoffs.to_waiting else None,
            "slot_free_to_submitted_max_s": round(max(handoffs.to_waiting), 2) if handoffs.to_waiting else None,
            "slots_taken_by_newcomers": len(handoffs.to_newcomers),
            "slots_taken_by_newcomers_p95_s": round(percentile(handoffs.to_newcomers, 95), 2) if handoffs.to_newcomers else None,
            "fifo_matcher_p50_s": round(percentile(fifo, 50), 2) if fifo else None,
            "fifo_matcher_p95_s": round(percentile(fifo, 95), 2) if fifo else None,
            "jobs_that_waited_on_the_gate": len({j for _, j, ok in gate.acquires if not ok}),
            "mean_slot_s": round(mean_slot, 3), "gate_ceiling_jobs_per_s": round(gate_ceiling, 3),
            "statuses": dict(statuses), "lost": lost, "duplicated": duplicated,
            "lost_examples": lost_examples, "duplicated_examples": duplicated_examples,
            "inconsistent_with_provider": len(inconsistent), "inconsistent_examples": inconsistent[:5],
            "provider_tasks": len(tasks), "jobs_with_a_task": len(tasks_per_job),
            "output_versions": sum(versions_per_job.values()), "unowned_output_versions": unowned_versions,
            "provider_api_calls_wire": dict(api), "provider_api_calls_per_job": round(sum(api.values()) / args.jobs, 3),
            "provider_api_calls_per_job_by_kind": {k: round(v / args.jobs, 3) for k, v in sorted(api.items())},
            "result_downloads": wire.counts.get("result download", 0),
            "adapter_calls": dict(adapter_calls.counts),
            "peak_concurrent_provider_tasks": stats["max_concurrent_observed"],
            "answers_1303": stats["rejected_by_code"].get(1303, 0),
            "emulator_stats": stats,
            "finalize_crashes": stack.runner.crashes.get(stack.finalize_function, 0) if hasattr(stack.runner, "crashes") else 0,
            "finalized_by": dict(Counter(j.get("finalized_by") for j in jobs.values() if j["status"] == "SUCCEEDED")),
            "dead_letter_messages": dlq,
            "stage_median_s": {k: round(median(v), 3) for k, v in stages.items()},
            "stage_p95_s": {k: round(percentile(v, 95), 3) for k, v in stages.items()},
            "invocations": invocations,
            "job_events": events,
            "process_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        })
        adapter_calls.undo()
        gate.undo()
        return out
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    facts = template_facts()
    gate_default = template_gate()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="100 uploads")
    parser.add_argument("--jobs", type=int, help="uploads at once (default 1,000; --quick 100)")
    parser.add_argument("--gate", type=int, default=gate_default,
                        help=f"ProviderConcurrencyLimit (default: the template's {gate_default})")
    parser.add_argument("--provider-limit", type=int, help="the emulator's account concurrency (default 4 x gate)")
    parser.add_argument("--faults", action="store_true", help="the chaos test's fault mix and short waits")
    parser.add_argument("--processing", type=float, default=0.3, help="the emulator's processing time per task (s)")
    parser.add_argument("--submit-max-concurrency", type=int, default=facts["submit_max_concurrency"],
                        help=f"submit concurrency (default: the template's {facts['submit_max_concurrency']})")
    parser.add_argument("--poll-interval", type=int,
                        help=f"poller interval (default: the template's {facts['poll_interval_seconds']} s; 1 s with --faults)")
    parser.add_argument("--visibility-timeout", type=int,
                        help=f"intake visibility timeout (default: the template's {facts['intake_visibility_timeout_s']} s; "
                             "5 s with --faults, as the chaos test)")
    parser.add_argument("--upload-threads", type=int, default=16)
    parser.add_argument("--rescan", type=float, default=30.0, help="seconds between consistent scans of the jobs table")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up (and count the rest as lost) after this")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (100 if args.quick else 1000)
    args.provider_limit = args.provider_limit or 4 * args.gate
    if args.poll_interval is None:
        args.poll_interval = 1 if args.faults else facts["poll_interval_seconds"]
    if args.visibility_timeout is None:
        args.visibility_timeout = 5 if args.faults else facts["intake_visibility_timeout_s"]
    if args.provider_limit <= args.gate:
        parser.error("--provider-limit must be above --gate, so that only the gate holds concurrency")

    work = Path(tempfile.mkdtemp(prefix="clipedit-bench-load-"))
    atexit.register(shutil.rmtree, work, True)
    clip = make_small_clip(work / "clip.mp4").read_bytes()
    sink = LogSink()
    mode = "with faults" if args.faults else "no faults"
    with sink.installed():
        say(f"load: {args.jobs} uploads at once, {mode} (gate {args.gate}, provider limit {args.provider_limit}, "
            f"submit concurrency {args.submit_max_concurrency}, processing {args.processing} s, "
            f"poll interval {args.poll_interval} s, visibility {args.visibility_timeout} s)")
        r = run(args, clip, work)
    notes = r.pop("notes")

    clean = r["lost"] == 0 and r["duplicated"] == 0
    say(f"  {r['jobs_per_s']} jobs/s over {r['wall_s']} s, p50 {r['latency_p50_s']} s, p95 {r['latency_p95_s']} s; "
        f"lost {r['lost']}, duplicated {r['duplicated']}")
    name = f"4 load, {args.jobs} uploads at once, gate {args.gate}" + (", faults" if args.faults else "")
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in r["provider_api_calls_per_job_by_kind"].items())
    rows = [
        row(name, f"{r['jobs_per_s']:.2f} jobs/s end to end (p50 {r['latency_p50_s']:.1f} s, p95 {r['latency_p95_s']:.1f} s "
                  f"upload->terminal)",
            f"S3 alone stores {r['baseline_uploads_per_s']:.1f} uploads/s", r["jobs_per_s"] / r["baseline_uploads_per_s"],
            "(no target)", None),
        row(f"{name}: gate", f"{r['jobs_per_s']:.2f} jobs/s vs the gate's ceiling G / mean slot time "
                             f"({args.gate} / {r['mean_slot_s']:.2f} s)",
            f"{r['gate_ceiling_jobs_per_s']:.2f} jobs/s", r["jobs_per_s"] / r["gate_ceiling_jobs_per_s"], "(no target)", None),
        row(f"{name}: provider", f"{r['provider_api_calls_per_job']:.2f} API calls/job ({kinds}); peak "
                                 f"{r['peak_concurrent_provider_tasks']} tasks at once; {r['answers_1303']} x 1303",
            f"gate {args.gate}, account limit {args.provider_limit}", None,
            f"peak <= {args.gate}, 0 x 1303",
            r["peak_concurrent_provider_tasks"] <= args.gate and r["answers_1303"] == 0),
        row(f"{name}: slot free -> next waiting job SUBMITTED",
            (f"p50 {r['slot_free_to_submitted_p50_s']:.2f} s, p95 {r['slot_free_to_submitted_p95_s']:.2f} s, "
             f"max {r['slot_free_to_submitted_max_s']:.2f} s ({r['slot_free_to_submitted_n']} hand-offs, "
             f"{r['slot_free_to_submitted_by_transfer']} of them by transfer; "
             f"{r['jobs_that_waited_on_the_gate']} jobs found the gate full; "
             f"{r['slots_taken_by_newcomers']} freed slots taken by jobs that had not waited)") if r["slot_free_to_submitted_n"]
            else f"no job found the gate full ({r['jobs_that_waited_on_the_gate']})",
            "-", None, "p95 <= 5 s",
            (r["slot_free_to_submitted_p95_s"] or 0) <= 5.0 if r["slot_free_to_submitted_n"] else None),
        row(f"{name}: lost / duplicated", f"lost {r['lost']}, duplicated {r['duplicated']} "
                                          f"({', '.join(f'{k} {v}' for k, v in sorted(r['statuses'].items()))})",
            f"{r['provider_tasks']} provider tasks for {r['jobs_with_a_task']} jobs, {r['output_versions']} output versions",
            None, "0 / 0", clean),
    ]
    notes.append(f"machine: {__import__('os').cpu_count()} cores; process CPU {r['process_cpu_s']} s during the run; "
                 f"peak RSS {r['peak_rss_mb']} MB")
    if r["slot_free_to_submitted_n"]:
        notes.append(f"slot free -> SUBMITTED p95 by hand-over {r['by_transfer_p95_s']} s, "
                     f"by plain release then acquire {r['by_release_p95_s']} s")
    if r["fifo_matcher_p95_s"] is not None:
        notes.append(f"slot free -> SUBMITTED by the previous matcher (each release to the earliest waiting job's "
                     f"SUBMITTED, drifts): p50 {r['fifo_matcher_p50_s']} s, p95 {r['fifo_matcher_p95_s']} s")
    notes.append(f"stage medians (s): {r['stage_median_s']}")
    notes.append(f"stage p95 (s): {r['stage_p95_s']}")
    notes.append("Lambda invocations: " + "; ".join(f"{k} x{v['count']} ({v['per_job']}/job, median {v['median_ms']} ms, "
                                                     f"{v['failed']} failed)" for k, v in r["invocations"].items()))
    notes.append(f"provider calls at KlingProvider: {r['adapter_calls']}; on the wire: {r['provider_api_calls_wire']}; "
                 f"result downloads {r['result_downloads']}")
    notes.append(f"emulator: {r['emulator_stats']}")
    if args.faults:
        notes.append(f"finalize crashes {r['finalize_crashes']}; finalized_by {r['finalized_by']}; "
                     f"dead-letter messages {r['dead_letter_messages']}")
    if r["inconsistent_with_provider"]:
        notes.append(f"{r['inconsistent_with_provider']} jobs disagree with the provider's record: {r['inconsistent_examples']}")
    if r["lost_examples"] or r["duplicated_examples"]:
        notes.append(f"lost: {r['lost_examples']}; duplicated: {r['duplicated_examples']}")
    if sink.messages:
        notes.append("handler warnings: " + "; ".join(f"{k} x{v}" for k, v in sorted(sink.messages.items())[:20]))
    details = {"settings": {k: v for k, v in vars(args).items() if k != "json"}, "run": r,
               "handler_log_bytes": sink.bytes, "handler_warnings": sink.messages}
    write_result(args.json, "load" + ("_faults" if args.faults else ""), rows, details, notes)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
