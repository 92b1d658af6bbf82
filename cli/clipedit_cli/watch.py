"""Following jobs and batches to their end: live progress on a terminal, one line per change
otherwise (and JSON lines with --json), by reading the job records with a deadline."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from clipedit.domain.job import Job
from clipedit_cli.backend import Backend, elapsed_since
from clipedit_cli.errors import CliError, Exit

STATUS_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "TIMED_OUT": "red", "REJECTED": "yellow"}
_pause = threading.Event()  # never set: wait(interval) is an interruptible pause between reads


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status, "cyan")
    return f"[{style}]{status}[/{style}]"


class Reporter:
    """Where progress goes: rich live display, plain lines, or JSON lines."""

    def __init__(self, console: Console, *, as_json: bool) -> None:
        self.console = console
        self.as_json = as_json
        self.live = console.is_terminal and not as_json

    def change(self, job: Job, previous: str | None) -> None:
        if self.live:
            return
        elapsed = round(elapsed_since(job.created_at), 1)
        if self.as_json:
            print(json.dumps({"job_id": job.job_id, "status": job.status.value, "previous_status": previous,
                              "elapsed_seconds": elapsed, "error_code": job.error_code}), flush=True)
        else:
            detail = f"  {job.error_code}: {job.error_message}" if job.error_code else ""
            self.console.print(f"[{elapsed:7.1f} s] {job.job_id}  {styled(job.status.value)}{detail}",
                               highlight=False)


def watch_jobs(backend: Backend, job_ids: list[str], *, console: Console, as_json: bool, interval: float,
               timeout: float | None, on_missing_seconds: float | None = 30.0) -> list[Job]:
    """Until every job is terminal. A job that does not exist yet is waited for up to
    ``on_missing_seconds`` (None: as long as the timeout allows, for jobs just submitted, which
    intake creates once their message is taken off a possibly busy queue)."""
    reporter = Reporter(console, as_json=as_json)
    deadline = None if timeout is None else time.monotonic() + timeout
    missing_deadline = None if on_missing_seconds is None else time.monotonic() + on_missing_seconds
    seen: dict[str, str] = {}
    current: dict[str, Job] = {}
    progress = Progress(SpinnerColumn(), TextColumn("{task.fields[job]}"), TextColumn("{task.fields[status]}"),
                        TextColumn("{task.fields[elapsed]}"), console=console, disable=not reporter.live)
    tasks = {job_id: progress.add_task("", total=1, job=job_id, status="[dim]waiting[/dim]", elapsed="")
             for job_id in job_ids}
    with progress:
        while True:
            for job_id in job_ids:
                if job_id in current and current[job_id].terminal:
                    continue
                job = backend.container.jobs.get(job_id)
                if job is None:
                    if missing_deadline is not None and time.monotonic() > missing_deadline:
                        raise CliError(f"job {job_id} does not exist in {backend.target.describe()} "
                                       f"(waited {on_missing_seconds:.0f} s for intake to create it)", Exit.NOT_FOUND)
                    continue
                current[job_id] = job
                if seen.get(job_id) != job.status.value:
                    reporter.change(job, seen.get(job_id))
                    seen[job_id] = job.status.value
                elapsed = elapsed_since(job.created_at)
                progress.update(tasks[job_id], status=styled(job.status.value), elapsed=f"{elapsed:6.1f} s",
                                completed=1 if job.terminal else 0)
            if len(current) == len(job_ids) and all(j.terminal for j in current.values()):
                return [current[j] for j in job_ids]
            if deadline is not None and time.monotonic() > deadline:
                waiting = ", ".join(f"{j} {seen.get(j, 'not created')}" for j in job_ids
                                    if j not in current or not current[j].terminal)
                raise CliError(f"gave up after {timeout:.0f} s; still running: {waiting}", Exit.TIMEOUT)
            _pause.wait(interval)


def watch_batch(backend: Backend, batch_id: str, *, console: Console, as_json: bool, interval: float,
                timeout: float | None, file_job_id: str | None = None,
                on_missing_seconds: float = 60.0) -> dict[str, Any]:
    """Until the batch is COMPLETED (every row terminal, results file written). If the batch file
    itself was refused (``file_job_id`` REJECTED), that is reported instead."""
    live = console.is_terminal and not as_json
    deadline = None if timeout is None else time.monotonic() + timeout
    missing_deadline = time.monotonic() + on_missing_seconds
    last_line = None
    progress = Progress(SpinnerColumn(), TextColumn(batch_id), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[counts]}"), console=console, disable=not live)
    task = progress.add_task("", total=None, counts="waiting for intake")
    with progress:
        while True:
            batch = backend.batch(batch_id)
            if batch is None:
                refused = backend.container.jobs.get(file_job_id) if file_job_id else None
                if refused is not None and refused.terminal:
                    raise CliError(f"the batch file was {refused.status.value}: {refused.error_code}: "
                                   f"{refused.error_message}", Exit.JOB_NOT_SUCCEEDED)
                if time.monotonic() > missing_deadline:
                    raise CliError(f"batch {batch_id} does not exist in {backend.target.describe()}", Exit.NOT_FOUND)
            else:
                counts = " ".join(f"{k}={v}" for k, v in sorted(batch["counts"].items()))
                progress.update(task, total=batch["total"], completed=batch["terminal"], counts=counts)
                line = (batch["terminal"], counts, batch["done"])
                if line != last_line and not live:
                    if as_json:
                        print(json.dumps({"batch_id": batch_id, "total": batch["total"], "terminal": batch["terminal"],
                                          "counts": batch["counts"], "done": batch["done"]}), flush=True)
                    else:
                        console.print(f"{batch_id}  {batch['terminal']}/{batch['total']} finished  {counts}",
                                      highlight=False)
                    last_line = line
                if batch["done"]:
                    return batch
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(f"gave up after {timeout:.0f} s; batch {batch_id} not complete", Exit.TIMEOUT)
            _pause.wait(interval)


def summary_rows(jobs: list[Job]) -> list[dict[str, Any]]:
    return [{"job_id": j.job_id, "status": j.status.value, "output_key": j.output_key, "error_code": j.error_code,
             "error_message": j.error_message} for j in jobs]


def exit_for(jobs: list[Job]) -> Exit:
    return Exit.OK if all(j.status.value == "SUCCEEDED" for j in jobs) else Exit.JOB_NOT_SUCCEEDED

