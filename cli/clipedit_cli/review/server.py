"""The review page's routes. Server-rendered (Jinja2), a little vanilla JS for live updates, the
synced players and the keyboard; every action goes through the Backend's use cases."""

from __future__ import annotations

import csv
import io
import secrets
import socket
import tempfile
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from clipedit.domain.errors import ClipeditError, SpecError
from clipedit.domain.job import Job, JobStatus, ObjectRef
from clipedit.domain.review import parse_review
from clipedit.usecases.queries import NotFound, public_job
from clipedit_cli.errors import CliError
from clipedit_cli.review import views
from clipedit_cli.review.security import CSRF_FIELD, TOKEN_COOKIE, Guard
from clipedit_cli.review.thumbnails import ensure_thumbnail

HERE = Path(__file__).parent
PRESIGN_SECONDS = 900  # video URLs live 15 minutes; the page asks for new ones on reload
MAX_PLAN_BYTES = 5 * 1024 * 1024
LIST_LIMIT = 100


class ReviewApp:
    def __init__(self, backend: Any, *, reviewer: str, guard: Guard) -> None:
        self.backend = backend
        self.container = backend.container
        self.reviewer = reviewer
        self.guard = guard
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(money=views.money)
        # Live parts re-read the index every 2 s locally; on a deployed stack every 5 s (read capacity).
        self.refresh_ms = 2000 if backend.target.kind == "local" else 5000
        self.plans: dict[str, tuple[str, bytes]] = {}
        self._plans_lock = threading.Lock()

    # --- helpers ------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(csrf=self.guard.csrf_token(), csrf_field=CSRF_FIELD, reviewer=self.reviewer,
                       target=self.backend.target.describe(), refresh_ms=self.refresh_ms)
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)

    def problem(self, request: Request, status: int, code: str, message: str) -> HTMLResponse:
        return self.render(request, "problem.html", status_code=status, code=code, message=message)

    async def checked_form(self, request: Request) -> Any:
        form = await request.form(max_files=1, max_fields=200, max_part_size=MAX_PLAN_BYTES)
        why = self.guard.csrf_problem(request, form.get(CSRF_FIELD) if isinstance(form.get(CSRF_FIELD), str) else None)
        if why:
            raise HTTPException(403, f"CSRF_REJECTED: {why}; nothing was changed")
        return form

    def job(self, job_id: str) -> Job:
        return self.container.queries.job(job_id)

    def presign(self, bucket: str | None, key: str | None) -> str | None:
        if not bucket or not key:
            return None
        return self.container.storage.presign_get(ObjectRef(bucket, key), PRESIGN_SECONDS)

    def source_url(self, job: Job) -> str | None:
        video = job.video_ref
        if isinstance(video, dict):
            if video.get("url"):
                return str(video["url"])
            if video.get("key"):
                return self.container.storage.presign_get(
                    ObjectRef(video.get("bucket") or job.input_bucket, video["key"], video.get("version_id")),
                    PRESIGN_SECONDS)
        if job.input_key.lower().endswith((".mp4", ".mov")):
            return self.container.storage.presign_get(job.input, PRESIGN_SECONDS)
        return None

    def list_jobs(self, params: Any) -> list[Job]:
        since = params.get("since") or None
        review = params.get("review") or None
        page = self.container.queries.list(status=params.get("status") or None, batch=params.get("batch") or None,
                                           since=since if not params.get("batch") else None, limit=LIST_LIMIT,
                                           review_status=review)
        jobs = page.jobs
        if params.get("provider"):
            jobs = [j for j in jobs if j.provider == params["provider"]]
        return jobs

    def neighbours(self, job: Job) -> tuple[str | None, str | None]:
        """(previous, next) job ids: the batch's rows in order, else the newest jobs."""
        if job.batch_id:
            ids = [j.job_id for j in self.container.queries.list(batch=job.batch_id, limit=LIST_LIMIT).jobs]
        else:
            ids = [j.job_id for j in self.container.queries.list(limit=LIST_LIMIT).jobs]
        if job.job_id not in ids:
            return None, None
        at = ids.index(job.job_id)
        return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)

    # --- the job list ---------------------------------------------------------------------------

    def list_context(self, request: Request) -> dict[str, Any]:
        params = dict(request.query_params)
        jobs = self.list_jobs(params)
        batch_ids = sorted({j.batch_id for j in jobs if j.batch_id})
        batches = [views.batch_progress(b) for b in (self.backend.batch(i) for i in batch_ids[:20]) if b]
        return {"jobs": jobs, "counts": views.counts(jobs), "spent": views.spent(jobs), "batches": batches,
                "filters": params, "query": urlencode(params), "clip_name": views.clip_name}

    async def index(self, request: Request) -> Response:
        return self.render(request, "jobs.html", **self.list_context(request))

    async def jobs_fragment(self, request: Request) -> Response:
        return self.render(request, "_jobs.html", **self.list_context(request))

    # --- one job --------------------------------------------------------------------------------

    async def job_page(self, request: Request) -> Response:
        job = self.job(request.path_params["job_id"])
        previous, following = self.neighbours(job)
        output = self.presign(job.output_bucket, job.output_key) if job.status == JobStatus.SUCCEEDED else None
        images = [self._image_url(u) for u in job.image_urls or []]
        return self.render(request, "job.html", job=job, view=public_job(job), source=self.source_url(job),
                           output=output, spec=views.spec_rows(job), timeline=views.timeline(job),
                           previous=previous, next=following, images=[i for i in images if i],
                           notice=request.query_params.get("notice"))

    def _image_url(self, ref: str) -> str | None:
        if ref.startswith("https://"):
            return ref
        if ref.startswith("s3://"):
            bucket, _, key = ref[5:].partition("/")
            return self.presign(bucket, key)
        return None

    async def job_fragment(self, request: Request) -> Response:
        job = self.job(request.path_params["job_id"])
        return self.render(request, "_job_status.html", job=job, timeline=views.timeline(job))

    async def review(self, request: Request) -> Response:
        form = await self.checked_form(request)
        job_id = request.path_params["job_id"]
        review = parse_review({"review_status": form.get("review_status"), "review_note": form.get("review_note")})
        self.container.review_job(job_id, review, reviewer=self.reviewer)
        return RedirectResponse(f"/jobs/{job_id}?notice={review.status.value}", status_code=303)

    async def try_again(self, request: Request) -> Response:
        form = await self.checked_form(request)
        revision = self.container.revise_job(request.path_params["job_id"], prompt=form.get("prompt"),
                                             mode=form.get("mode") or None)
        return RedirectResponse(f"/jobs/{revision.job_id}", status_code=303)

    async def promote(self, request: Request) -> Response:
        await self.checked_form(request)
        revision = self.container.revise_job.promote(request.path_params["job_id"])
        return RedirectResponse(f"/jobs/{revision.job_id}", status_code=303)

    async def thumbnail(self, request: Request) -> Response:
        job = self.job(request.path_params["job_id"])
        if job.status != JobStatus.SUCCEEDED or not job.output_key:
            return Response(status_code=404)
        try:
            import av  # noqa: F401  (PyAV decodes the frame; without it the cards show their text)
        except ImportError:
            return Response("thumbnails need PyAV (pip install av)", status_code=404, media_type="text/plain")
        key = ensure_thumbnail(self.backend.s3, outputs_bucket=self.backend.target.outputs_bucket,
                               output_bucket=job.output_bucket or self.backend.target.outputs_bucket,
                               output_key=job.output_key, job_id=job.job_id)
        return RedirectResponse(self.presign(self.backend.target.outputs_bucket, key) or "", status_code=302,
                                headers={"cache-control": "private, max-age=600"})

    # --- a batch --------------------------------------------------------------------------------

    def batch_rows(self, batch_id: str) -> list[Job]:
        return list(self.backend.all_pages(status=None, batch=batch_id, since=None, limit=LIST_LIMIT))

    def batch_context(self, request: Request) -> dict[str, Any]:
        batch_id = request.path_params["batch_id"]
        batch = self.backend.batch(batch_id)
        rows = self.batch_rows(batch_id) if batch else []
        status, review = request.query_params.get("status"), request.query_params.get("review")
        shown = [j for j in rows if (not status or j.status.value == status)
                 and (not review or (j.review_status or "unreviewed") == review)]
        return {"batch_id": batch_id, "batch": batch, "progress": views.batch_progress(batch) if batch else None,
                "rows": shown, "all_rows": rows, "spent": views.spent(rows), "filters": dict(request.query_params),
                "query": urlencode(dict(request.query_params)),
                "approved": sum(1 for j in rows if j.review_status == "approved")}

    async def batch_page(self, request: Request) -> Response:
        return self.render(request, "batch.html", **self.batch_context(request))

    async def batch_fragment(self, request: Request) -> Response:
        return self.render(request, "_batch_grid.html", **self.batch_context(request))

    async def bulk_approve(self, request: Request) -> Response:
        form = await self.checked_form(request)
        batch_id = request.path_params["batch_id"]
        chosen = set(form.getlist("job_id"))
        review = parse_review({"review_status": "approved"})
        approved = 0
        for job in self.batch_rows(batch_id):
            if job.status == JobStatus.SUCCEEDED and (job.job_id in chosen or (not chosen and not job.review_status)):
                self.container.review_job(job.job_id, review, reviewer=self.reviewer)
                approved += 1
        return RedirectResponse(f"/batches/{batch_id}?notice=approved+{approved}", status_code=303)

    def approved_rows(self, batch_id: str) -> list[Job]:
        if self.backend.batch(batch_id) is None:
            raise NotFound(f"no batch {batch_id!r}")
        return [j for j in self.batch_rows(batch_id) if j.review_status == "approved" and j.output_key]

    async def export_csv(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        rows = self.approved_rows(batch_id)
        tag_names = sorted({k for j in rows for k in (j.tags or {})})
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["batch_row", "job_id", *tag_names, "output_bucket", "output_key", "cost_usd", "reviewed_by",
                         "reviewed_at", "review_note"])
        for job in rows:
            writer.writerow([job.batch_row, job.job_id, *[(job.tags or {}).get(t, "") for t in tag_names],
                             job.output_bucket, job.output_key, job.cost_usd, job.reviewed_by, job.reviewed_at,
                             job.review_note or ""])
        return Response(text.getvalue(), media_type="text/csv", headers={
            "content-disposition": f'attachment; filename="{batch_id}-approved.csv"'})

    async def export_zip(self, request: Request) -> Response:
        """The approved outputs in one zip, built in a temporary file (streamed from S3, stored, not
        recompressed: mp4 is compressed already) and deleted once sent."""
        batch_id = request.path_params["batch_id"]
        rows = self.approved_rows(batch_id)
        handle = tempfile.NamedTemporaryFile(prefix="clipedit-review-", suffix=".zip", delete=False)
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
            for job in rows:
                name = f"row-{job.batch_row:05d}-{PurePosixPath(job.output_key or '').name}"
                body = self.backend.s3.get_object(Bucket=job.output_bucket, Key=job.output_key)["Body"]
                with archive.open(name, "w", force_zip64=True) as entry:
                    for chunk in iter(lambda: body.read(1024 * 1024), b""):
                        entry.write(chunk)
        handle.close()
        return FileResponse(handle.name, media_type="application/zip", filename=f"{batch_id}-approved.zip",
                            background=BackgroundTask(Path(handle.name).unlink, missing_ok=True))

    # --- plan and launch --------------------------------------------------------------------------

    async def plan_page(self, request: Request) -> Response:
        return self.render(request, "plan.html", plan=None)

    async def plan_upload(self, request: Request) -> Response:
        from clipedit.usecases.plan import decode_batch

        form = await self.checked_form(request)
        upload = form.get("catalog")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return self.render(request, "plan.html", status_code=400, plan=None,
                               error="NO_FILE: choose a catalog (.csv or .jsonl) to plan")
        data = await upload.read(MAX_PLAN_BYTES + 1)
        name = PurePosixPath(upload.filename).name
        try:
            if len(data) > MAX_PLAN_BYTES:
                raise SpecError(f"{name} is over {MAX_PLAN_BYTES // (1024 * 1024)} MB; plan it with "
                                "`clipedit batch FILE --plan`", code="PLAN_TOO_LARGE")
            plan = self.container.plan_batch(name, decode_batch(name, data))
        except SpecError as error:
            return self.render(request, "plan.html", status_code=400, plan=None, error=f"{error.code}: {error.message}")
        plan_id = secrets.token_urlsafe(12)
        with self._plans_lock:
            self.plans[plan_id] = (name, data)
        return self.render(request, "plan.html", plan=plan, plan_id=plan_id, name=name)

    async def launch(self, request: Request) -> Response:
        await self.checked_form(request)
        with self._plans_lock:
            planned = self.plans.pop(request.path_params["plan_id"], None)
        if planned is None:
            return self.problem(request, 404, "NO_SUCH_PLAN", "this plan is not on the server any more (it was "
                                "launched already, or the server restarted): upload the catalog again")
        name, data = planned
        with tempfile.TemporaryDirectory(prefix="clipedit-plan-") as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            batch_id, _, _ = self.backend.upload_batch(path)
        return RedirectResponse(f"/batches/{batch_id}", status_code=303)

    # --- the application ---------------------------------------------------------------------------

    def build(self) -> Starlette:
        routes = [
            Route("/", self.index),
            Route("/fragments/jobs", self.jobs_fragment),
            Route("/jobs/{job_id}", self.job_page),
            Route("/fragments/jobs/{job_id}", self.job_fragment),
            Route("/jobs/{job_id}/review", self.review, methods=["POST"]),
            Route("/jobs/{job_id}/try-again", self.try_again, methods=["POST"]),
            Route("/jobs/{job_id}/promote", self.promote, methods=["POST"]),
            Route("/thumbnails/{job_id}", self.thumbnail),
            Route("/batches/{batch_id}", self.batch_page),
            Route("/fragments/batches/{batch_id}", self.batch_fragment),
            Route("/batches/{batch_id}/approve", self.bulk_approve, methods=["POST"]),
            Route("/batches/{batch_id}/approved.csv", self.export_csv),
            Route("/batches/{batch_id}/approved.zip", self.export_zip),
            Route("/plan", self.plan_page),
            Route("/plan", self.plan_upload, methods=["POST"]),
            Route("/plan/{plan_id}/launch", self.launch, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
        app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=self.access)],
                        exception_handlers={NotFound: self._not_found, ClipeditError: self._refused,
                                            CliError: self._cli_error, HTTPException: self._http_error})
        return app

    async def access(self, request: Request, call_next: Any) -> Response:
        if not self.guard.token_ok(request):
            return Response("FORBIDDEN: this review page needs its access token (open the URL `clipedit review` "
                            "printed, with ?token=...)\n", status_code=403, media_type="text/plain")
        if self.guard.token and request.query_params.get("token"):
            # Trade the token in the URL for a cookie, and drop it from the address bar and history.
            response: Response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.guard.token, httponly=True, samesite="strict")
            return response
        response = await call_next(request)
        response.headers.setdefault("x-frame-options", "DENY")
        response.headers.setdefault("referrer-policy", "no-referrer")
        response.headers.setdefault("x-content-type-options", "nosniff")
        return response

    async def _not_found(self, request: Request, error: Exception) -> Response:
        return self.problem(request, 404, getattr(error, "code", "NOT_FOUND"), getattr(error, "message", str(error)))

    async def _refused(self, request: Request, error: Exception) -> Response:
        code = getattr(error, "code", "REFUSED")
        status = 409 if code == "NOT_REVIEWABLE" else 400
        return self.problem(request, status, code, getattr(error, "message", str(error)))

    async def _cli_error(self, request: Request, error: Exception) -> Response:
        return self.problem(request, 400, "REFUSED", getattr(error, "message", str(error)))

    async def _http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        code, _, message = str(error.detail).partition(": ")
        return self.problem(request, error.status_code, code if message else "HTTP_ERROR", message or str(error.detail))


def bind(host: str, port: int) -> socket.socket:
    """Bind before serving: the port is known (and connections queue) before the server runs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def server_for(app: Starlette) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))


def caller_arn(backend: Any) -> str:
    """Who reviews: the caller's identity, as the status API records it."""
    try:
        return str(backend.target.client("sts").get_caller_identity()["Arn"])
    except Exception:  # no STS answer (offline): still say who, as far as we know
        import getpass

        return f"local-user:{getpass.getuser()}"
