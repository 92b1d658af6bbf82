"""``clipedit``: submit edits, follow them, read and manage jobs on a deployed stack or the local one."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from clipedit_cli.errors import EXIT_CODES_HELP, CliError, Exit

app = typer.Typer(
    name="clipedit", add_completion=False, no_args_is_help=True, rich_markup_mode=None,
    pretty_exceptions_enable=False,  # CliError is reported by main(), one line, with its exit code
    help="Video edits on AWS with Kling O3: submit clips, watch them, fetch the results.\n\n"
         "Targets a deployed stack (--stack NAME, or CLIPEDIT_STACK) or else the local stack started with "
         f"`clipedit local`.\n\n{EXIT_CODES_HELP}",
)
console = Console(highlight=False, soft_wrap=True)  # no hard wraps: scripts grep lines
errors = Console(stderr=True, highlight=False, soft_wrap=True)
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED")


@dataclass
class Context:
    stack: str | None = None
    region: str | None = None
    profile: str | None = None
    local_file: str | None = None
    _backend: Any = field(default=None, repr=False)

    def backend(self):  # type: ignore[no-untyped-def]
        if self._backend is None:
            from clipedit_cli.backend import Backend
            from clipedit_cli.target import resolve_target

            self._backend = Backend(resolve_target(stack=self.stack, region=self.region, profile=self.profile,
                                                   local_file=self.local_file))
        return self._backend

    def interval(self, given: float | None) -> float:
        if given is not None:
            return given
        return 0.5 if self.backend().target.kind == "local" else 3.0


def _ctx(ctx: typer.Context) -> Context:
    return ctx.obj


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str), flush=True)


@app.callback()
def main_options(
    ctx: typer.Context,
    stack: Annotated[Optional[str], typer.Option(help="Deployed stack name (reads its outputs).", envvar="CLIPEDIT_STACK")] = None,
    region: Annotated[Optional[str], typer.Option(help="AWS region of the stack.", envvar="AWS_REGION")] = None,
    profile: Annotated[Optional[str], typer.Option(help="AWS profile.", envvar="AWS_PROFILE")] = None,
    local_file: Annotated[Optional[str], typer.Option(help="The local stack's state file (default .clipedit/local.json).",
                                                      envvar="CLIPEDIT_LOCAL_FILE")] = None,
) -> None:
    ctx.obj = Context(stack=stack, region=region, profile=profile, local_file=local_file)


# --- submit -----------------------------------------------------------------------------------


def _parse_variant(text: str) -> dict[str, Any]:
    """``draft`` or ``draft:mode=std,keep_audio=false`` or a JSON object."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise CliError(f"--variant {text!r} is not valid JSON: {error.msg}", Exit.USAGE) from None
    name, _, rest = text.partition(":")
    variant: dict[str, Any] = {"name": name.strip()}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--variant {text!r}: expected NAME[:field=value,...]", Exit.USAGE)
        variant[key.strip()] = {"true": True, "false": False}.get(value.strip().lower(), value.strip())
    return variant


@app.command()
def submit(
    ctx: typer.Context,
    clip: Annotated[str, typer.Argument(help="The clip: a local .mp4/.mov (uploaded), an inbox key, s3:// or https://.")],
    prompt: Annotated[Optional[str], typer.Option(help="The edit; refer to the clip as @Video1, images as @Image1...")] = None,
    mode: Annotated[Optional[str], typer.Option(help="std (720p) or pro (1080p).")] = None,
    model: Annotated[Optional[str], typer.Option(help="o3 (kling-v3-omni) or o1.")] = None,
    provider: Annotated[Optional[str], typer.Option(help="kling or fal (default: the stack's DefaultProvider).")] = None,
    keep_audio: Annotated[Optional[bool], typer.Option("--keep-audio/--no-audio", help="Keep the soundtrack.")] = None,
    image: Annotated[Optional[list[str]], typer.Option(help="Reference image (repeat; @Image1, @Image2... in order).")] = None,
    element: Annotated[Optional[list[str]], typer.Option(help="Element as FRONTAL,REF[,REF...] (repeat; @Element1...).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="A preset in the inbox's presets/.")] = None,
    platform: Annotated[Optional[str], typer.Option(help="reels, tiktok, shorts (9:16), youtube (16:9) or square (1:1).")] = None,
    aspect_ratio: Annotated[Optional[str], typer.Option(help="16:9, 9:16 or 1:1: reframe before the edit (or the new shot's ratio in reference mode).")] = None,
    reframe: Annotated[Optional[str], typer.Option(help="crop (default) or pad (whole frame on a blurred copy).")] = None,
    focus: Annotated[Optional[str], typer.Option(help="Crop focus: center, auto (follow the subject) or x,y fractions (0.3,0.5).")] = None,
    trim: Annotated[Optional[str], typer.Option(help="START-END seconds to keep (2.5-9), cut before the edit.")] = None,
    normalize: Annotated[Optional[bool], typer.Option("--normalize/--no-normalize", help="Fix clips outside the model's limits (size, fps, rotation, codec) instead of rejecting them.")] = None,
    video_mode: Annotated[Optional[str], typer.Option(help="edit (default) or reference (the clip guides a new shot).")] = None,
    duration: Annotated[Optional[int], typer.Option(help="Reference mode: the new shot's length in seconds.")] = None,
    shot_type: Annotated[Optional[str], typer.Option(help="Reference mode on fal O3: customize or intelligence.")] = None,
    long_clip: Annotated[Optional[str], typer.Option(help="A clip longer than the model edits: reject (default), trim (keep the first allowed seconds) or segment (edit it in parts, stitch them).")] = None,
    seam: Annotated[Optional[str], typer.Option(help="long_clip segment: cut (default) or crossfade between parts.")] = None,
    overlap: Annotated[Optional[float], typer.Option(help="seam crossfade: seconds the parts share at each seam (default 0.5).")] = None,
    spec: Annotated[Optional[Path], typer.Option(help="A manifest JSON file to start from (options override it).")] = None,
    variant: Annotated[Optional[list[str]], typer.Option(help="NAME[:field=value,...] or JSON (repeat): one job each.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="key=value kept on the job and its events (repeat).")] = None,
    watch_it: Annotated[bool, typer.Option("--watch", help="Follow the jobs to their end.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="With --watch: give up after this many seconds.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="A local clip: print the plan (parts, boundaries, estimated cost) and submit nothing.")] = False,
) -> None:
    """Upload a clip (and its reference images) and submit the edit; prints the job ids."""
    from clipedit_cli.backend import load_spec, new_session

    document: dict[str, Any] = load_spec(spec) if spec else {}
    options = {name: value for name, value in (("prompt", prompt), ("mode", mode), ("model", model), ("provider", provider),
                        ("keep_audio", keep_audio), ("preset", preset), ("platform", platform),
                        ("aspect_ratio", aspect_ratio), ("reframe", reframe), ("focus", focus), ("trim", trim),
                        ("normalize", normalize), ("video_mode", video_mode), ("duration", duration),
                        ("shot_type", shot_type), ("long_clip", long_clip), ("seam", seam), ("overlap", overlap))
               if value is not None}
    if dry_run:
        _print_plan_and_exit(Path(clip), {**document, **options}, as_json=as_json)
    context = _ctx(ctx)
    backend = context.backend()
    session = new_session()
    document["video_url"] = backend.media_ref(clip, session)
    document.update(options)
    if image:
        document["image_urls"] = [backend.media_ref(i, session) for i in image]
    if element:
        elements = []
        for text in element:
            frontal, *references = [backend.media_ref(p.strip(), session) for p in text.split(",") if p.strip()]
            elements.append({"frontal_image_url": frontal, "reference_image_urls": references})
        document["elements"] = elements
    if variant:
        document["variants"] = [_parse_variant(v) for v in variant]
    if tag:
        tags = dict(document.get("tags") or {})
        for pair in tag:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CliError(f"--tag {pair!r}: expected key=value", Exit.USAGE)
            tags[key.strip()] = value.strip()
        document["tags"] = tags
    submitted = backend.submit_manifest(document, name=f"cli-{session}")
    if as_json and not watch_it:
        _print_json(submitted.as_dict())
    elif not as_json:
        for job_id in submitted.job_ids:
            print(job_id, flush=True)
    if watch_it:
        _watch_and_exit(context, submitted.job_ids, as_json=as_json, interval=None, timeout=timeout,
                        just_submitted=True)


def _print_plan_and_exit(path: Path, document: dict[str, Any], *, as_json: bool) -> None:
    from clipedit_cli.dry_run import dry_run

    if not path.is_file():
        raise CliError(f"--dry-run plans a local clip; {path} is not a file", Exit.USAGE)
    plan = dry_run(path, document)
    if as_json:
        _print_json(plan)
    elif "error_code" in plan:
        console.print(f"[red]{plan['error_code']}[/red]: {plan['error_message']}")
    else:
        table = Table("part", "start (s)", "end (s)", "seconds")
        for part in plan["parts"]:
            table.add_row(str(part["part"]), f"{part['start']:.3f}", f"{part['end']:.3f}", f"{part['seconds']:.3f}")
        console.print(table)
        estimate = plan["estimate"]
        console.print(f"{plan['kept_seconds']:.2f} s in {estimate['parts']} part(s), seam {plan['seam']}"
                      + (f" ({plan['overlap']:g} s overlap)" if plan["overlap"] else "")
                      + f"; boundaries {', '.join(f'{b:g}' for b in plan['boundaries']) or 'none'}"
                      + f"; estimated {estimate['billed_seconds']} s billed, about {estimate['units']:g} units "
                      + f"({estimate['mode']}). Nothing was submitted.")
    raise typer.Exit(int(Exit.USAGE if "error_code" in plan else Exit.OK))


# --- watch, status, list ------------------------------------------------------------------------


def _watch_and_exit(context: Context, job_ids: list[str], *, as_json: bool, interval: float | None,
                    timeout: float | None, just_submitted: bool = False) -> None:
    from clipedit_cli.watch import exit_for, summary_rows, watch_jobs

    jobs = watch_jobs(context.backend(), job_ids, console=errors if as_json else console, as_json=as_json,
                      interval=context.interval(interval), timeout=timeout,
                      on_missing_seconds=None if just_submitted else 30.0)
    if as_json:
        _print_json({"jobs": summary_rows(jobs)})
    else:
        for job in jobs:
            if job.status.value == "SUCCEEDED":
                console.print(f"{job.job_id}  [green]SUCCEEDED[/green]  s3://{job.output_bucket}/{job.output_key}")
            else:
                console.print(f"{job.job_id}  [red]{job.status.value}[/red]  {job.error_code}: {job.error_message}")
    raise typer.Exit(int(exit_for(jobs)))


@app.command()
def watch(
    ctx: typer.Context,
    job_ids: Annotated[Optional[list[str]], typer.Argument(metavar="[JOB]...", help="Job ids to follow.")] = None,
    batch: Annotated[Optional[str], typer.Option(help="Follow a batch (b-...) instead.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines per change, a JSON summary at the end.")] = False,
    interval: Annotated[Optional[float], typer.Option(help="Seconds between two reads (default 0.5 local, 3 deployed).")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Give up after this many seconds (exit 6).")] = None,
) -> None:
    """Follow jobs (or a batch) until they finish; exit 0 only if all SUCCEEDED."""
    context = _ctx(ctx)
    if batch and job_ids:
        raise CliError("give job ids or --batch, not both", Exit.USAGE)
    if batch:
        _watch_batch_and_exit(context, batch, as_json=as_json, interval=interval, timeout=timeout)
    if not job_ids:
        raise CliError("give at least one job id, or --batch ID", Exit.USAGE)
    _watch_and_exit(context, job_ids, as_json=as_json, interval=interval, timeout=timeout)


def _watch_batch_and_exit(context: Context, batch_id: str, *, as_json: bool, interval: float | None,
                          timeout: float | None, file_job_id: str | None = None) -> None:
    from clipedit_cli.watch import watch_batch

    result = watch_batch(context.backend(), batch_id, console=errors if as_json else console, as_json=as_json,
                         interval=context.interval(interval), timeout=timeout, file_job_id=file_job_id)
    good = result["counts"].get("SUCCEEDED", 0) == result["total"]
    if as_json:
        _print_json(result)
    else:
        where = f"s3://{result.get('source_bucket')}/{result.get('results_key')}"
        console.print(f"{batch_id}  {'[green]' if good else '[red]'}{result['terminal']}/{result['total']} finished"
                      f"{'[/green]' if good else '[/red]'}  results: {where}")
    raise typer.Exit(int(Exit.OK if good else Exit.JOB_NOT_SUCCEEDED))


@app.command()
def status(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    as_json: Annotated[bool, typer.Option("--json", help="The whole job record as JSON.")] = False,
) -> None:
    """Show one job."""
    backend = _ctx(ctx).backend()
    view = backend.job_view(job_id)
    parts = [backend.job_view(part_id) for part_id in view.get("part_job_ids") or []]
    if as_json:
        _print_json({**view, "parts": parts} if parts else view)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    for name in ("job_id", "status", "input_key", "video_ref", "prompt", "provider", "mode", "model", "provider_task_id",
                 "created_at", "submitted_at", "finished_at", "output_bucket", "output_key", "output_size",
                 "error_code", "error_message", "batch_id", "batch_row", "variant", "retry_of", "parent_id",
                 "parts_total", "parts_succeeded", "parts_failed", "estimated_seconds", "estimated_units",
                 "provider_units"):
        if name in view:
            value = view[name]
            table.add_row(name, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    console.print(table)
    if parts:  # a long clip: its parts, each a job of its own
        rows = Table("part", "job", "status", "window (s)", "result")
        for number, part in enumerate(parts, 1):
            window = (part.get("framing") or {}).get("trim", "")
            rows.add_row(str(number), part["job_id"], part["status"], window,
                         part.get("output_key") or part.get("error_code") or "")
        console.print(rows)


@app.command(name="list")
def list_jobs(
    ctx: typer.Context,
    status_filter: Annotated[Optional[str], typer.Option("--status", help="Only this status.")] = None,
    since: Annotated[Optional[str], typer.Option(help="Created since: 2026-11-24T10:00:00Z, 2026-11-24, or 30m/2h/7d.")] = None,
    batch: Annotated[Optional[str], typer.Option(help="Only the rows of this batch, in row order.")] = None,
    review_status: Annotated[Optional[str], typer.Option("--review-status", help="approved, rejected or unreviewed "
                                                         "(SUCCEEDED jobs; pages may come back short).")] = None,
    limit: Annotated[int, typer.Option(help="Jobs per page (1-100).")] = 50,
    page: Annotated[Optional[str], typer.Option("--next", help="Continue from the `next` cursor of a previous page.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help='JSON: {"jobs": [...], "next": cursor-or-null}.')] = False,
) -> None:
    """List jobs, newest first (or a batch's rows), through the table's indexes."""
    from clipedit.usecases.queries import public_job

    backend = _ctx(ctx).backend()
    filters = dict(status=status_filter, batch=batch, since=since, limit=limit, review_status=review_status)
    if every:
        jobs, cursor = list(backend.all_pages(**filters)), None
    else:
        result = backend.list(cursor=page, **filters)
        jobs, cursor = result.jobs, result.next_cursor
    if as_json:
        _print_json({"jobs": [public_job(j) for j in jobs], "next": cursor})
        return
    table = Table("job", "status", "created (UTC)", "clip", "result", "review")
    for column in table.columns[:3]:
        column.no_wrap = True  # ids are copied from here: never cut
    for job in _parts_under_parents(jobs):
        video = job.video_ref or {}
        clip = (video.get("key") or video.get("url") or job.input_key).rsplit("/", 1)[-1].split("?", 1)[0]
        if job.batch_row is not None:
            clip += f" (row {job.batch_row})"
        result_text = job.output_key or job.error_code or ""
        name = job.job_id
        if job.extra.get("parent_id"):  # a long clip's part, listed under its parent
            name = f"└ {job.job_id}"
            clip += f" (part {int(job.extra.get('part_index') or 0) + 1}/{job.extra.get('parts_total', '?')})"
        elif job.extra.get("parts_total") and not job.terminal:
            result_text = f"{job.extra.get('parts_succeeded') or 0}/{job.extra['parts_total']} parts"
        table.add_row(name, job.status.value, job.created_at[:19].replace("T", " "), clip, result_text,
                      job.review_status or "")
    console.print(table)
    if cursor:
        console.print(f"more: clipedit list --next {cursor}" + "".join(
            f" --{k} {v}" for k, v in (("status", status_filter), ("since", since), ("batch", batch),
                                       ("review-status", review_status),
                                       ("limit", limit if limit != 50 else None)) if v))


def _parts_under_parents(jobs: list[Any]) -> list[Any]:
    """The page's order, except that a long clip's parts follow their parent when it is on the page."""
    on_page = {job.job_id for job in jobs}
    children: dict[str, list[Any]] = {}
    for job in jobs:
        if job.extra.get("parent_id") in on_page:
            children.setdefault(job.extra["parent_id"], []).append(job)
    ordered: list[Any] = []
    for job in jobs:
        if job.extra.get("parent_id") in on_page:
            continue
        ordered.append(job)
        ordered += sorted(children.get(job.job_id, []), key=lambda part: int(part.extra.get("part_index") or 0))
    return ordered


# --- batches, results, retries ------------------------------------------------------------------


@app.command(name="batch")
def batch_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A catalog: .csv or .jsonl, one job per row.")],
    no_watch: Annotated[bool, typer.Option("--no-watch", help="Upload and print the batch id only.")] = False,
    plan: Annotated[bool, typer.Option("--plan", help="Check and price every row (spec and a ranged-read probe "
                                       "of its clip) and submit nothing; exit 1 if a row would be rejected.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="Give up watching after this many seconds (exit 6).")] = None,
) -> None:
    """Upload a catalog batch, then watch it to the end (media the rows name must be in the inbox or at https URLs)."""
    from clipedit.domain.keys import job_id_for

    context = _ctx(ctx)
    backend = context.backend()
    if plan:
        _plan_and_exit(backend, file, as_json=as_json)
    batch_id, key, version = backend.upload_batch(file)
    if as_json and no_watch:
        _print_json({"batch_id": batch_id, "key": key})
    elif not as_json:
        console.print(f"uploaded s3://{backend.target.inbox_bucket}/{key} -> batch {batch_id}")
    if no_watch:
        return
    _watch_batch_and_exit(context, batch_id, as_json=as_json, interval=None, timeout=timeout,
                          file_job_id=job_id_for(backend.target.inbox_bucket, key, version))


def _plan_and_exit(backend: Any, file: Path, *, as_json: bool) -> None:
    result = backend.plan(file)
    if as_json:
        document = result.as_dict()
        _print_json(document)
    else:
        table = Table("row", "status", "clip", "provider/model/mode", "seconds", "estimate (USD)", "why")
        for row in result.rows:
            table.add_row(str(row.row), row.status, row.video or "", "/".join(filter(None, (row.provider, row.model, row.mode))),
                          "" if row.seconds is None else f"{row.seconds:g}",
                          "" if row.estimated_cost_usd is None else f"{row.estimated_cost_usd:.2f}",
                          f"{row.error_code}: {row.error_message}" if row.error_code else "")
        console.print(table)
        console.print(f"{len(result.rows) - result.rejected} row(s) ok, {result.rejected} rejected; estimated total "
                      f"${result.total_estimated_cost_usd:.2f} (nothing submitted)")
    raise typer.Exit(int(Exit.JOB_NOT_SUCCEEDED if result.rejected else Exit.OK))


@app.command()
def download(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    to: Annotated[Path, typer.Option(help="Directory to write the edited clip into.")] = Path("."),
) -> None:
    """Download a SUCCEEDED job's edited clip; prints the file's path."""
    path = _ctx(ctx).backend().download(job_id, to)
    print(path, flush=True)


@app.command()
def retry(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    watch_it: Annotated[bool, typer.Option("--watch", help="Follow the new job to its end.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run a FAILED, TIMED_OUT or REJECTED job again as a new job (the original stays as it is)."""
    context = _ctx(ctx)
    outcome = context.backend().retry(job_id)
    if as_json and not watch_it:
        _print_json(outcome.as_dict())
    elif not as_json:
        note = "" if outcome.created else "  (this retry had been asked for already)"
        print(f"{outcome.job_id}{note}", flush=True)
    if watch_it:
        _watch_and_exit(context, [outcome.job_id], as_json=as_json, interval=None, timeout=None,
                        just_submitted=True)


# --- the review page --------------------------------------------------------------------------


@app.command(name="review")
def review_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    token: Annotated[Optional[str], typer.Option(help="Access token every request must carry (required with a "
                                                 "non-loopback --host).", envvar="CLIPEDIT_REVIEW_TOKEN")] = None,
) -> None:
    """A local web app: every edit next to its source, approve/reject, try again, promote to pro,
    batch grids with bulk approve and export, and batch plans with prices before launch."""
    import webbrowser

    from clipedit_cli.review.security import Guard, check_bind
    from clipedit_cli.review.server import ReviewApp, bind, caller_arn, server_for

    check_bind(host, token)  # before anything else: a refused bind never touches the stack
    backend = _ctx(ctx).backend()
    application = ReviewApp(backend, reviewer=caller_arn(backend), guard=Guard(token)).build()
    try:
        sock = bind(host, port)
    except OSError as error:
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror}; pick another --port", Exit.USAGE) from None
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/"
    errors.print(f"review page: {url}{' (add ?token=... once)' if token else ''}  on {backend.target.describe()}; "
                 "Ctrl-C stops it", markup=False)
    if not no_browser:
        webbrowser.open(url + (f"?token={token}" if token else ""))
    server_for(application).run(sockets=[sock])


# --- operations: cancel, reconcile, dead letters ---------------------------------------------------


@app.command()
def cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    reason: Annotated[str, typer.Option(help="Recorded as the job's error_message.")] = "cancelled on request",
) -> None:
    """Cancel a job: fal jobs at any stage, Kling jobs only before Kling has them (its API cannot
    cancel a task): exit 5 then, with the reason."""
    _print_json(_ctx(ctx).backend().cancel(job_id, reason=reason))


@app.command()
def reconcile(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="Fix what is found (default: report only).")] = False,
    stale_after: Annotated[int, typer.Option(help="Seconds without a change before a job counts as stuck.")] = 900,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find jobs whose record and the provider disagree (or that nothing moves any more) and, with
    --repair, fix them through the normal paths; exit 7 when something is left unrepaired."""
    findings = _ctx(ctx).backend().reconcile(repair=repair, stale_after_seconds=stale_after)
    if as_json:
        from clipedit.usecases.reconcile import summarize

        _print_json({"summary": summarize(findings), "findings": [f.as_dict() for f in findings]})
    else:
        for f in findings:
            console.print(f"{'repaired' if f.repaired else 'found':8} {f.job_id} [{f.status}] {f.problem} -> {f.repair}")
        console.print(f"{len(findings)} finding(s), {sum(f.repaired for f in findings)} repaired")
    if any(not f.repaired and not f.repair.startswith("none") for f in findings):
        raise typer.Exit(int(Exit.UNHEALTHY))


dlq_app = typer.Typer(help="The intake dead-letter queue: what is in it and why, and sending it back.",
                      no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command(name="list")
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead letters with what each was about and why it failed (consumes nothing); exit 7 if any."""
    letters = _ctx(ctx).backend().dead_letters().list(limit=limit)
    if as_json:
        _print_json(letters)
    else:
        for letter in letters:
            console.print(f"{letter['message_id']}  {letter['about']}  received {letter['receive_count']}x: "
                          f"{letter['reason']}")
        console.print(f"{len(letters)} dead letter(s)")
    if letters:
        raise typer.Exit(int(Exit.UNHEALTHY))


@dlq_app.command(name="redrive")
def dlq_redrive(
    ctx: typer.Context,
    limit: Annotated[Optional[int], typer.Option(help="At most this many (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Move dead letters back to the intake queue (fix their cause first; every path is idempotent)."""
    moved = _ctx(ctx).backend().dead_letters().redrive(limit=limit)
    _print_json({"redriven": moved}) if as_json else console.print(f"{moved} message(s) moved back to the intake queue")


# --- the local stack and health -----------------------------------------------------------------


@app.command()
def local() -> None:
    """Run the local stack (moto, the real handlers and state machine, the Kling emulator) until Ctrl-C."""
    from clipedit_cli.target import SOURCE_ROOT

    if not (SOURCE_ROOT / "local" / "stack.py").is_file():
        raise CliError("`clipedit local` runs from a source checkout (make venv installs it so); "
                       f"no local/stack.py under {SOURCE_ROOT}", Exit.USAGE)
    if str(SOURCE_ROOT) not in sys.path:
        sys.path.insert(0, str(SOURCE_ROOT))
    from local.stack import main as run_local_stack

    run_local_stack()


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check credentials, the stack outputs, table, inbox, the provider secret and key (a harmless call)."""
    from clipedit_cli.doctor import FAIL, run_checks

    checks = run_checks(_ctx(ctx).backend().target)
    if as_json:
        _print_json([c.as_dict() for c in checks])
    else:
        marks = {"ok": "[green]ok  [/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FAIL[/red]"}
        for check in checks:
            console.print(f"{marks[check.state]}  {check.name:<16} {check.detail}")
    if any(c.state == FAIL for c in checks):
        raise typer.Exit(int(Exit.UNHEALTHY))


def main() -> None:
    try:
        app()  # click's standalone mode: usage errors exit 2, typer.Exit exits with its code
    except CliError as error:
        errors.print(f"clipedit: {error.message}", markup=False)
        sys.exit(int(error.code))
