"""What the commands do, against one target, through the same use cases and adapters the
functions use (queries, retry, manifest submission); only uploads and downloads are plain S3."""

from __future__ import annotations

import json
import mimetypes
import time
import uuid
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from clipedit.config import Settings
from clipedit.domain.errors import SpecError
from clipedit.domain.job import Job
from clipedit.domain.keys import job_id_for
from clipedit.domain.pricing import PriceTable
from clipedit.domain.spec import Provider
from clipedit.usecases.queries import InvalidQuery, JobPage, NotFound, public_job
from clipedit.usecases.retry import NotRetryable, RetryOutcome
from clipedit.usecases.submit_manifest import SubmittedManifest
from clipedit.wiring import Container
from clipedit_cli.errors import CliError, Exit
from clipedit_cli.target import Target

MEDIA_PREFIX = "media/cli/"  # outside incoming/: media a manifest names must not become jobs themselves
BATCH_FILE_SUFFIXES = (".csv", ".jsonl")


class Backend:
    def __init__(self, target: Target) -> None:
        self.target = target
        optional = {"fal_queue_base_url": target.fal_base_url, "fal_jwks_url": target.fal_jwks_url}
        settings = Settings(
            jobs_table=target.jobs_table, inbox_bucket=target.inbox_bucket, outputs_bucket=target.outputs_bucket,
            event_bus_name=target.event_bus_name, provider_secret_id=target.provider_secret_id,
            kling_api_base_url=target.provider_base_url, intake_queue_url=target.intake_queue_url,
            dead_letter_queue_url=target.dead_letter_queue_url, default_provider=Provider(target.provider),
            # The local emulators serve results over http on loopback; a deployed stack never does.
            allow_http_fetch=target.kind == "local", allow_private_network_fetch=target.kind == "local",
            **({"result_host_allowlist": ("127.0.0.1",)} if target.kind == "local" else {}),
            **{k: v for k, v in optional.items() if v},
            prices=self._prices(target),
        )
        self.container = Container(settings, client_factory=target.client)

    @cached_property
    def s3(self) -> Any:
        # Built on first use: only uploads and downloads need it, and loading S3's service model
        # is most of a `clipedit status` or `list` process's start (JSON decoding, py-spy).
        return self.target.client("s3")

    @staticmethod
    def _prices(target: Target) -> PriceTable:
        from clipedit.domain.errors import ConfigError

        try:
            return PriceTable.from_json(target.price_overrides)
        except ConfigError as error:
            raise CliError(f"{target.describe()}: {error.message}", Exit.NO_TARGET) from None

    # --- reading ------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        try:
            return self.container.queries.job(job_id)
        except NotFound as error:
            raise CliError(f"{error.message} in {self.target.describe()}", Exit.NOT_FOUND) from None

    def job_view(self, job_id: str) -> dict[str, Any]:
        return public_job(self.job(job_id))

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        try:
            return self.container.queries.batch(batch_id)
        except NotFound:
            return None

    def list(self, *, status: str | None, batch: str | None, since: str | None, limit: int,
             cursor: str | None, review_status: str | None = None) -> JobPage:
        try:
            return self.container.queries.list(status=status, batch=batch, since=since, limit=limit, cursor=cursor,
                                               review_status=review_status)
        except InvalidQuery as error:
            raise CliError(error.message, Exit.USAGE) from None

    def all_pages(self, **filters: Any) -> Iterator[Job]:
        cursor = None
        while True:
            page = self.list(cursor=cursor, **filters)
            yield from page.jobs
            cursor = page.next_cursor
            if not cursor:
                return

    # --- submitting ---------------------------------------------------------------------------

    def upload_media(self, path: Path, session: str) -> str:
        """Upload a local file next to the others of this submission; returns its inbox key."""
        if not path.is_file():
            raise CliError(f"{path} is not a file", Exit.USAGE)
        key = f"{MEDIA_PREFIX}{session}/{path.name}"
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.s3.upload_file(str(path), self.target.inbox_bucket, key, ExtraArgs={"ContentType": content_type})
        return key

    def media_ref(self, value: str, session: str) -> str:
        """A local file is uploaded; an s3:// URI, an https URL or an inbox key is used as it is."""
        if value.startswith(("s3://", "https://", "http://")):
            return value
        path = Path(value).expanduser()
        if path.exists():
            return self.upload_media(path, session)
        if "/" in value:
            return value  # an inbox key such as media/teaser.mp4
        raise CliError(f"{value} is not a local file, an s3:// URI, an https URL or an inbox key", Exit.USAGE)

    def submit_manifest(self, document: Any, *, name: str) -> SubmittedManifest:
        try:
            return self.container.submit_manifest(document, name=name)
        except SpecError as error:
            raise CliError(f"{error.code}: {error.message}", Exit.USAGE) from None

    def upload_batch(self, path: Path) -> tuple[str, str, str]:
        """Upload a catalog under the batches prefix; returns (batch id, key, version id)."""
        if path.suffix.lower() not in BATCH_FILE_SUFFIXES:
            raise CliError(f"{path.name}: a batch is a .csv or .jsonl file", Exit.USAGE)
        if not path.is_file():
            raise CliError(f"{path} is not a file", Exit.USAGE)
        key = f"batches/cli/{new_session()}/{path.name}"
        with path.open("rb") as body:
            response = self.s3.put_object(Bucket=self.target.inbox_bucket, Key=key, Body=body,
                                          ContentType="text/csv" if path.suffix.lower() == ".csv" else "application/x-ndjson")
        version = response.get("VersionId")
        if not version:
            raise CliError(f"the inbox {self.target.inbox_bucket} returned no object version: is versioning on?",
                           Exit.NO_TARGET)
        # The batch id intake derives from the object version (see Intake._batch).
        return "b-" + job_id_for(self.target.inbox_bucket, key, version)[2:], key, version

    def plan(self, path: Path) -> Any:
        """Check and price every row of a local catalog; nothing is uploaded or submitted."""
        from clipedit.usecases.plan import decode_batch

        if not path.is_file():
            raise CliError(f"{path} is not a file", Exit.USAGE)
        try:
            return self.container.plan_batch(path.name, decode_batch(path.name, path.read_bytes()))
        except SpecError as error:
            raise CliError(f"{error.code}: {error.message}", Exit.USAGE) from None

    # --- acting on one job --------------------------------------------------------------------

    def retry(self, job_id: str) -> RetryOutcome:
        try:
            return self.container.retry_job(job_id)
        except NotFound as error:
            raise CliError(error.message, Exit.NOT_FOUND) from None
        except NotRetryable as error:
            raise CliError(error.message, Exit.REFUSED) from None

    def cancel(self, job_id: str, *, reason: str = "cancelled on request") -> dict[str, Any]:
        """Runs the CancelJob use case: fal cancels at any stage; Kling only before it has the task."""
        from clipedit.usecases.cancel import CancelRefused

        try:
            return self.container.cancel_job(job_id, reason=reason).as_dict()
        except CancelRefused as refused:
            code = Exit.NOT_FOUND if refused.code == "JOB_NOT_FOUND" else Exit.REFUSED
            raise CliError(f"{refused.code}: {refused.message}", code) from None

    # --- operations ---------------------------------------------------------------------------

    def reconcile(self, *, repair: bool, stale_after_seconds: int) -> list[Any]:
        return self.container.reconcile.run(repair=repair, stale_after_seconds=stale_after_seconds)

    def dead_letters(self) -> Any:
        if not self.target.dead_letter_queue_url:
            raise CliError(f"{self.target.describe()} names no dead-letter queue (output DeadLetterQueueUrl)",
                           Exit.NO_TARGET)
        return self.container.dead_letters

    def download(self, job_id: str, destination: Path) -> Path:
        job = self.job(job_id)
        if job.status.value != "SUCCEEDED" or not job.output_key:
            detail = f" ({job.error_code}: {job.error_message})" if job.error_code else ""
            raise CliError(f"job {job_id} is {job.status.value}{detail}; only SUCCEEDED jobs have an edited clip",
                           Exit.REFUSED)
        destination.mkdir(parents=True, exist_ok=True)
        target = destination / PurePosixPath(job.output_key).name
        self.s3.download_file(job.output_bucket or self.target.outputs_bucket, job.output_key, str(target))
        return target


def new_session() -> str:
    """A folder name per submission: sortable by time, unique."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def load_spec(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"{path} does not exist", Exit.USAGE) from None
    except json.JSONDecodeError as error:
        raise CliError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                       Exit.USAGE) from None
    if not isinstance(document, dict):
        raise CliError(f"{path} must hold one manifest object (the fields of `Writing edit specs`)", Exit.USAGE)
    return document


def elapsed_since(created_at: str | None) -> float:
    if not created_at:
        return 0.0
    started = datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()
    return max(0.0, time.time() - started)
