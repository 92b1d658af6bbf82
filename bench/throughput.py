"""Benchmark 4 - throughput: N uploads at once through the local stack, end to end.

Setup: the emulator processes for 0 s and renders by copying (``CLIPEDIT_EMULATOR_RENDER=copy``),
account concurrency 50 and our provider gate (``ProviderConcurrencyLimit``) set to it, as the
template tells a deployer to (``--gate`` to change it: at the template's default of 5 the gate,
not the pipeline, sets the rate; ``bench/load.py`` measures that case); the submit concurrency and
the poll interval are the template's unless given. One small valid clip (3 s, 1280x720, 24 fps, ~15 KB) is uploaded N times under distinct keys
by a thread pool, as fast as the local S3 takes them.

Figures: jobs/s from the first upload to the last terminal job event; p50/p95 of upload start ->
SUCCEEDED (the job record's own time); provider calls per job (creates, queries; the emulator's
stats and a count of ``KlingProvider`` calls); lost jobs (no terminal status) and duplicated jobs
(more than one provider task, or more than one SUCCEEDED, for one job) - both must be 0.

Baseline (same run, same stack, same thread pool): the rate at which the local S3 merely stores the
same N uploads (a bucket with no notification), i.e. the fastest this machine could feed the
pipeline.

Where the time goes: stage medians from each job's status history, Lambda invocations and their
durations by kind, then a second, smaller run under a per-thread CPU profiler (cProfile with the
thread CPU clock, every thread) giving CPU by component and the top functions of our own code.
"""

from __future__ import annotations

import argparse
import atexit
import json
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "clipedit" / "python"),
                str(Path(__file__).resolve().parents[1])]

from bench.common import (  # noqa: E402
    InvocationTimer,
    LogSink,
    ThreadProfiler,
    classify_invocation,
    iso_to_epoch,
    is_our_code,
    local_stack,
    make_small_clip,
    median,
    percentile,
    row,
    say,
    template_facts,
    top_functions,
    use_copy_render,
    write_result,
)

PROMPT = "Give @Video1 a warm grade. Keep the subject, motion and camera identical."
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED"}


class ProviderCallCounter:
    """Counts calls to the public methods of ``clipedit.adapters.kling.KlingProvider``."""

    def __init__(self) -> None:
        from clipedit.adapters import kling

        self.counts: Counter[str] = Counter()
        self._cls = kling.KlingProvider
        self._originals: dict[str, Any] = {}
        for name, value in list(vars(self._cls).items()):
            if name.startswith("_") or not callable(value) or isinstance(value, (staticmethod, classmethod)):
                continue
            self._originals[name] = value
            setattr(self._cls, name, self._wrap(name, value))

    def _wrap(self, name: str, function: Any) -> Any:
        counts = self.counts

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    def undo(self) -> None:
        for name, value in self._originals.items():
            setattr(self._cls, name, value)


class EventWatcher(threading.Thread):
    """Long-polls the stack's job-events queue; records each job's terminal event and counts
    SUCCEEDED events per job (two would mean a job was finalized twice)."""

    def __init__(self, info: dict[str, Any], expected: set[str]) -> None:
        super().__init__(name="bench-event-watcher", daemon=True)
        import boto3

        self.sqs = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                         region_name=info["region"]).client("sqs", endpoint_url=info["endpoint_url"])
        self.url = info["events_queue_url"]
        self.expected = expected
        self.lock = threading.Lock()
        self.terminal: dict[str, tuple[str, float]] = {}
        self.succeeded_events: Counter[str] = Counter()
        self.events = 0
        self.done = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            now = time.time()
            for message in messages:
                detail = json.loads(message["Body"]).get("detail", {})
                job_id, status = detail.get("job_id"), detail.get("status")
                with self.lock:
                    self.events += 1
                    if status == "SUCCEEDED":
                        self.succeeded_events[job_id] += 1
                    if status in TERMINAL and job_id not in self.terminal:
                        self.terminal[job_id] = (status, now)
            if messages:
                self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            with self.lock:
                if self.expected and self.expected <= set(self.terminal):
                    self.done.set()


def upload_all(client: Any, clip: Path, count: int, prefix: str, threads: int, bucket: str | None = None) -> tuple[dict[str, float], float, float]:
    """Upload ``count`` copies of the clip in parallel; returns ({job_id or key: start time}, t0, t1)."""
    body = clip.read_bytes()
    starts: dict[str, float] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        key = f"{prefix}{i:05d}.mp4"
        started = time.time()
        if bucket is None:
            job_id = client.upload_clip(clip, key, {"prompt": PROMPT})
        else:
            client.s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"prompt": PROMPT})
            job_id = key
        with lock:
            starts[job_id] = started

    t0 = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return starts, t0, time.time()


def scan_jobs(client: Any, table: str) -> dict[str, dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer

    from clipedit.adapters.dynamo_jobs import python_value

    deserializer = TypeDeserializer()
    jobs: dict[str, dict[str, Any]] = {}
    for page in client.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            job = {k: python_value(deserializer.deserialize(v)) for k, v in item.items()}
            jobs[job["job_id"]] = job
    return jobs


def run_pipeline(clip: Path, work: Path, name: str, count: int, args: argparse.Namespace, overrides: dict[str, str],
                 profiler: ThreadProfiler | None = None) -> dict[str, Any]:
    from local.client import LocalClient

    if profiler:
        profiler.install()
    stack = local_stack(name, work / name, poll_interval_seconds=args.poll_interval,
                        submit_max_concurrency=args.submit_max_concurrency,
                        visibility_timeout_seconds=args.visibility_timeout,
                        emulator_overrides=dict(overrides),
                        parameter_overrides={"ProviderConcurrencyLimit": str(args.gate)})
    stack.start()
    try:
        timer = InvocationTimer(stack, classify_invocation)
        providers = ProviderCallCounter()
        client = LocalClient(stack.info)
        out: dict[str, Any] = {}
        if profiler is None:
            # Baseline on the same moto and thread pool: the uploads alone, into a bucket that notifies nobody.
            client.s3.create_bucket(Bucket=f"clipedit-{name}-baseline")
            starts_b, b0, b1 = upload_all(client, clip, count, "baseline/", args.upload_threads, bucket=f"clipedit-{name}-baseline")
            out["baseline_uploads_per_s"] = count / (b1 - b0)
            say(f"  baseline: {count} uploads stored in {b1 - b0:.1f} s = {count / (b1 - b0):.1f} uploads/s")
        watcher = EventWatcher(stack.info, set())
        watcher.start()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        starts, t0, t_uploaded = upload_all(client, clip, count, "incoming/load/", args.upload_threads)
        with watcher.lock:
            watcher.expected = set(starts)
            if watcher.expected <= set(watcher.terminal):
                watcher.done.set()
        say(f"  {count} uploads in {t_uploaded - t0:.1f} s; waiting for every job to end ...")
        deadline = time.monotonic() + args.timeout
        while not watcher.done.wait(5):
            with watcher.lock:
                finished = len(set(watcher.terminal) & set(starts))
            say(f"    {finished}/{count} terminal after {time.time() - t0:.0f} s")
            if time.monotonic() > deadline:
                say("    timeout: counting the rest as lost")
                break
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        with watcher.lock:
            terminal_times = [watcher.terminal[j][1] for j in starts if j in watcher.terminal]
            succeeded_events = dict(watcher.succeeded_events)
            events = watcher.events
        t_end = max(terminal_times) if terminal_times else time.time()
        watcher.stop.set()
        watcher.join(5)
        jobs = scan_jobs(client, stack.info["jobs_table"])
        tasks = stack.emulator.tasks()
        stats = stack.emulator.stats()
        tasks_per_job = Counter(t["external_task_id"] for t in tasks if t["external_task_id"] in starts)
        latencies, stages = [], defaultdict(list)
        statuses: Counter[str] = Counter()
        finalized_by: Counter[str] = Counter()
        for job_id, started in starts.items():
            job = jobs.get(job_id)
            statuses[job["status"] if job else "MISSING"] += 1
            if not job or job["status"] != "SUCCEEDED":
                continue
            finalized_by[job.get("finalized_by") or "?"] += 1
            at = {h["status"]: iso_to_epoch(h["at"]) for h in job["status_history"]}
            latencies.append(at["SUCCEEDED"] - started)
            previous, previous_t = "upload", started
            for status in ("RECEIVED", "QUEUED", "SUBMITTED", "PROCESSING", "SUCCEEDED"):
                if status in at:
                    stages[f"{previous}->{status}"].append(at[status] - previous_t)
                    previous, previous_t = status, at[status]
        invocations: dict[str, dict[str, float]] = {}
        for kind in sorted({r["kind"] for r in timer.records}):
            durations = [r["seconds"] for r in timer.records if r["kind"] == kind]
            invocations[kind] = {"count": len(durations), "per_job": round(len(durations) / count, 3),
                                 "median_ms": round(median(durations) * 1000, 1),
                                 "p95_ms": round(percentile(durations, 95) * 1000, 1),
                                 "total_s": round(sum(durations), 2)}
        lost = sum(n for status, n in statuses.items() if status not in TERMINAL)
        duplicated = sum(1 for j in starts if tasks_per_job.get(j, 0) > 1 or succeeded_events.get(j, 0) > 1)
        out.update({
            "jobs": count,
            "uploads_s": round(t_uploaded - t0, 3),
            "wall_s": round(t_end - t0, 3),
            "jobs_per_s": round(count / (t_end - t0), 3),
            "latency_p50_s": round(percentile(latencies, 50), 3),
            "latency_p95_s": round(percentile(latencies, 95), 3),
            "latency_max_s": round(max(latencies), 3) if latencies else None,
            "statuses": dict(statuses),
            "finalized_by": dict(finalized_by),
            "lost": lost,
            "duplicated": duplicated,
            "provider_tasks": len([t for t in tasks if t["external_task_id"] in starts]),
            "provider_calls": dict(providers.counts),
            "provider_calls_per_job": round(sum(providers.counts.values()) / count, 3),
            "emulator_stats": stats,
            "stage_median_s": {k: round(median(v), 4) for k, v in stages.items()},
            "stage_p95_s": {k: round(percentile(v, 95), 4) for k, v in stages.items()},
            "invocations": invocations,
            "sqs_failed_records": getattr(stack.dispatcher, "failed_records", None),
            "sqs_batches": getattr(stack.dispatcher, "batches", None),
            "process_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 2),
            "job_events": events,
        })
        out["cpu_ms_per_job"] = round(out["process_cpu_s"] / count * 1000, 1)
        providers.undo()
        return out
    finally:
        stack.stop()
        if profiler:
            profiler.uninstall()


AREAS = (
    ("moto (the AWS emulation)", ("site-packages/moto/", "site-packages/werkzeug/", "site-packages/py_partiql_parser/",
                                  "site-packages/antlr4/", "site-packages/jsonpath_ng/", "site-packages/xmltodict")),
    ("botocore/boto3 (SDK, client side)", ("site-packages/botocore/", "site-packages/boto3/", "site-packages/s3transfer/",
                                           "site-packages/urllib3/", "site-packages/awscrt/", "site-packages/dateutil/",
                                           "site-packages/jmespath/")),
    ("our code (clipedit, functions)", ("layers/clipedit/python/clipedit/", "/functions/")),
    ("local stack + Kling emulator (local/)", ("/local/",)),
    ("httpx/httpcore", ("site-packages/httpx/", "site-packages/httpcore/", "site-packages/h11/", "site-packages/anyio/")),
    ("Powertools", ("site-packages/aws_lambda_powertools/",)),
    ("PyAV/numpy (emulator probe)", ("site-packages/av/", "site-packages/numpy/")),
)


def cpu_by_area(stats: Any) -> dict[str, float]:
    """Own CPU time (tottime) grouped by where the function lives."""
    areas: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        area = next((name for name, markers in AREAS if any(m in filename for m in markers)), None)
        if area is None:
            if filename == "~":
                area = "C built-ins (sockets, json, hashing, locks ...)"
            elif "site-packages" in filename:
                area = "other libraries"
            else:
                area = "Python stdlib (http.server, socketserver, threading, json ...)"
        areas[area] += tottime
    return dict(sorted(((k, round(v, 2)) for k, v in areas.items()), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    facts = template_facts()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="50 uploads, profile 30")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--profile-jobs", type=int, help="size of the profiled run (0: none; default 120)")
    parser.add_argument("--submit-max-concurrency", type=int, default=facts["submit_max_concurrency"],
                        help=f"submit concurrency (default: the template's {facts['submit_max_concurrency']})")
    parser.add_argument("--kling-concurrency", type=int, default=50)
    parser.add_argument("--gate", type=int, help="ProviderConcurrencyLimit (default: the account's concurrency, "
                                                 "as the template tells a deployer to set it)")
    parser.add_argument("--poll-interval", type=int, default=facts["poll_interval_seconds"],
                        help=f"poller interval (default: the template's {facts['poll_interval_seconds']} s)")
    parser.add_argument("--visibility-timeout", type=int, default=facts["intake_visibility_timeout_s"],
                        help=f"intake queue visibility timeout (default: the template's {facts['intake_visibility_timeout_s']} s; "
                             "the local stack's own 5 s is shorter than a loaded submit batch and causes redeliveries)")
    parser.add_argument("--upload-threads", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    count = args.jobs or (50 if args.quick else 1000)
    args.gate = args.gate or args.kling_concurrency
    profile_count = args.profile_jobs if args.profile_jobs is not None else (30 if args.quick else 120)

    notes: list[str] = []
    overrides = {"CLIPEDIT_EMULATOR_PROCESSING_SECONDS": "0", "CLIPEDIT_EMULATOR_CONCURRENCY": str(args.kling_concurrency),
                 "CLIPEDIT_EMULATOR_SEED": "1"}
    notes.append(use_copy_render(overrides))
    work = Path(tempfile.mkdtemp(prefix="clipedit-bench-load-"))
    atexit.register(shutil.rmtree, work, True)  # the clip and the stacks' state files
    clip = make_small_clip(work / "clip.mp4")
    sink = LogSink()
    details: dict[str, Any] = {"settings": {
        "jobs": count, "submit_max_concurrency": args.submit_max_concurrency, "kling_concurrency": args.kling_concurrency,
        "gate": args.gate,
        "visibility_timeout_s": args.visibility_timeout,
        "poll_interval_s": args.poll_interval, "upload_threads": args.upload_threads, "clip_bytes": clip.stat().st_size}}
    with sink.installed():
        say(f"throughput: {count} uploads at once (submit concurrency {args.submit_max_concurrency}, "
            f"Kling concurrency {args.kling_concurrency}, processing 0 s, poll interval {args.poll_interval} s)")
        main_run = run_pipeline(clip, work, "bench-load", count, args, overrides)
        say(f"  {main_run['jobs_per_s']:.1f} jobs/s, p50 {main_run['latency_p50_s']:.2f} s, p95 {main_run['latency_p95_s']:.2f} s, "
            f"lost {main_run['lost']}, duplicated {main_run['duplicated']}")
        details["run"] = main_run
        if profile_count:
            say(f"throughput: profiled run, {profile_count} uploads (per-thread CPU profile) ...")
            profiler = ThreadProfiler()
            profiled = run_pipeline(clip, work, "bench-load-prof", profile_count, args, overrides, profiler)
            stats = profiler.stats()
            details["profiled_run"] = profiled
            if stats is not None:
                total = sum(v[2] for v in stats.stats.values())
                if args.json:  # the merged profile, for pstats/snakeviz (bench/results is not committed)
                    profile_path = Path(args.json).with_suffix(".prof")
                    stats.dump_stats(profile_path)
                    details["profile_file"] = str(profile_path)
                details["profile"] = {
                    "profiled_cpu_s": round(total, 2), "threads_profiled": profiler.threads,
                    "cpu_by_area_s": cpu_by_area(stats),
                    "top_our_code_cumulative": top_functions(stats, where=is_our_code, key="cumulative", limit=10),
                    "top_our_code_own": top_functions(stats, where=is_our_code, key="tottime", limit=10),
                    "top_overall_own": top_functions(stats, where=lambda f: True, key="tottime", limit=15),
                }
    details["handler_log_bytes"] = sink.bytes
    details["handler_warnings"] = sink.messages

    run = main_run
    clean = run["lost"] == 0 and run["duplicated"] == 0
    rows = [
        row(f"4 throughput, {count} uploads at once (gate {args.gate}, account {args.kling_concurrency})",
            f"{run['jobs_per_s']:.1f} jobs/s end to end (p50 {run['latency_p50_s']:.1f} s, p95 {run['latency_p95_s']:.1f} s upload->SUCCEEDED)",
            f"S3 alone stores {run['baseline_uploads_per_s']:.1f} uploads/s",
            run["jobs_per_s"] / run["baseline_uploads_per_s"], "(no target; where the time goes below)", None),
        row(f"4 throughput, {count} uploads: lost / duplicated",
            f"lost {run['lost']}, duplicated {run['duplicated']}; {run['provider_calls_per_job']:.2f} provider calls/job "
            f"({', '.join(f'{k} {v}' for k, v in sorted(run['provider_calls'].items()))})",
            f"{count} jobs, {run['provider_tasks']} provider tasks",
            None, "lost = 0 and duplicated = 0", clean),
    ]
    busy = run["emulator_stats"].get("rejected_by_code", {})
    if busy:
        notes.append(f"provider answers other than success: {busy} (1303 = over the account concurrency: the job waits and is retried)")
    notes.append(f"stage medians (s): {run['stage_median_s']}")
    notes.append("Lambda invocations: " + "; ".join(f"{k} x{v['count']} median {v['median_ms']} ms p95 {v['p95_ms']} ms"
                                                     for k, v in run["invocations"].items()))
    notes.append(f"process CPU {run['process_cpu_s']} s = {run['cpu_ms_per_job']} ms per job (moto, handlers, emulator and client share 2 cores)")
    if "profile" in details:
        areas = details["profile"]["cpu_by_area_s"]
        total = sum(areas.values()) or 1
        notes.append("profiled CPU by area: " + ", ".join(f"{k} {v / total:.0%}" for k, v in list(areas.items())[:7]))
        notes.append("top of our code by cumulative CPU: " + "; ".join(
            f"{e['function']} {e['cumtime_s']} s" for e in details["profile"]["top_our_code_cumulative"][:10]))
    if sink.messages:
        notes.append("handler warnings: " + "; ".join(f"{k} x{v}" for k, v in sorted(sink.messages.items())))
    write_result(args.json, "throughput", rows, details, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
