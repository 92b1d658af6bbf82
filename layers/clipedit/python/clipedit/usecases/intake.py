"""Intake: an inbox upload becomes job records (and, for a catalog, a batch record).

- ``incoming/**.mp4|.mov``: a job per clip (per variant), the spec from the object's metadata
  (``prompt``, ``mode``, ``keep-audio``, ``model``, ``preset``, ``spec`` = key of a manifest),
  else the preset named by the first folder, else the default preset, else REJECTED;
- ``jobs/**.json``: a manifest (one object or a list), a job per entry (per variant);
- ``batches/**.csv|.jsonl``: a job per row, grouped in a batch, expanded in chunks through the queue.

Job ids are derived from the object version (plus entry index and variant), and records are
created with conditional puts, so a redelivered event never makes a second job.
"""

from __future__ import annotations

import email.header
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from clipedit.domain.batch import BatchRow, parse_batch
from clipedit.domain.errors import SpecError
from clipedit.domain.job import Job, JobStatus, ObjectRef
from clipedit.domain.keys import is_video_key, job_id_for
from clipedit.domain.manifest import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_ENTRIES,
    MediaRef,
    ResolvedSpec,
    check_json_depth,
    expand_variants,
    merge_layers,
    parse_json_document,
    parse_manifest,
    parse_preset,
    render_output_key,
    resolve,
)
from clipedit.domain.spec import SpecDefaults, parse_bool
from clipedit.domain.uploads import UploadedObject
from clipedit.ports import BatchStore, Clock, DocumentStore, JobStore, MessageQueue
from clipedit.usecases.common import StatusRecorder, iso, results_key_for

MAX_PRESET_BYTES = 256 * 1024
ROWS_PER_CHUNK = 100


@dataclass(frozen=True)
class IntakeSettings:
    inbox_bucket: str
    incoming_prefix: str = "incoming/"
    jobs_prefix: str = "jobs/"
    batches_prefix: str = "batches/"
    presets_prefix: str = "presets/"
    output_prefix: str = "edited/"
    default_preset: str | None = None
    allowed_buckets: frozenset[str] = frozenset()
    defaults: SpecDefaults = field(default_factory=SpecDefaults)


@dataclass
class IntakeResult:
    kind: str  # clip | manifest | batch | ignored
    job_ids: list[str] = field(default_factory=list)  # RECEIVED jobs, ready to submit
    detail: str = ""


def _decode(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return "".join(
            part.decode(charset or "utf-8") if isinstance(part, bytes) else part
            for part, charset in email.header.decode_header(value)
        )
    except Exception:
        return value


def metadata_layer(metadata: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(manifest fields set by S3 user metadata, the other recognised keys: preset/spec)."""
    meta = {key.lower().replace("_", "-"): _decode(value) for key, value in metadata.items()}
    layer: dict[str, Any] = {}
    for name in ("prompt", "mode", "model", "provider"):
        if meta.get(name, "").strip():
            layer[name] = meta[name].strip() if name == "prompt" else meta[name].strip().lower()
    if meta.get("keep-audio", "").strip():
        layer["keep_audio"] = parse_bool(meta["keep-audio"], field="keep-audio", default=True)
    if meta.get("normalize", "").strip():
        layer["normalize"] = parse_bool(meta["normalize"], field="normalize", default=True)
    for name in ("platform", "aspect-ratio", "reframe", "focus", "trim", "video-mode", "duration", "shot-type",
                 "long-clip", "seam", "overlap"):
        if meta.get(name, "").strip():
            layer[name.replace("-", "_")] = meta[name].strip()
    if "mode" in layer and layer["mode"] not in ("std", "pro"):
        raise SpecError(f"mode must be one of std, pro; got {meta['mode']!r}", code="INVALID_MODE")
    if "model" in layer and layer["model"] not in ("o3", "o1"):
        raise SpecError(f"model must be one of o3, o1; got {meta['model']!r}", code="INVALID_MODEL")
    if "provider" in layer and layer["provider"] not in ("kling", "fal"):
        raise SpecError(f"provider must be one of kling, fal; got {meta['provider']!r}", code="INVALID_PROVIDER")
    extra = {k: meta[k].strip() for k in ("preset", "spec") if meta.get(k, "").strip()}
    return layer, extra


class Intake:
    def __init__(
        self,
        *,
        jobs: JobStore,
        batches: BatchStore,
        documents: DocumentStore,
        queue: MessageQueue,
        head_metadata: Callable[[ObjectRef], Mapping[str, str]],
        clock: Clock,
        settings: IntakeSettings,
        provider_name: str,
        recorder: StatusRecorder,
    ) -> None:
        self._jobs = jobs
        self._batches = batches
        self._documents = documents
        self._queue = queue
        self._head_metadata = head_metadata
        self._clock = clock
        self._settings = settings
        self._provider = provider_name
        self._recorder = recorder

    # --- routing ----------------------------------------------------------------------------

    def upload(self, upload: UploadedObject) -> IntakeResult:
        s, key, lower = self._settings, upload.key, upload.key.lower()
        if key.startswith(s.incoming_prefix) and is_video_key(key):
            return self._clip(upload)
        if key.startswith(s.jobs_prefix) and lower.endswith(".json"):
            return self._manifest(upload)
        if key.startswith(s.batches_prefix) and lower.endswith((".csv", ".jsonl")) and not lower.endswith(".results.csv"):
            return self._batch(upload)
        return IntakeResult("ignored", detail="not a clip, manifest or batch key")

    # --- clips ------------------------------------------------------------------------------

    def _clip(self, upload: UploadedObject) -> IntakeResult:
        base_id = job_id_for(upload.bucket, upload.key, upload.version)
        video = MediaRef(bucket=upload.bucket, key=upload.key, version_id=upload.version_id)
        try:
            meta_layer, extra = metadata_layer(self._head_metadata(upload.ref))
            spec_layer = self._manifest_at(extra["spec"]) if "spec" in extra else {}
            preset_name = extra.get("preset") or spec_layer.get("preset")
            if not preset_name and not meta_layer.get("prompt") and not spec_layer.get("prompt"):
                preset_name = self._folder_preset(upload.key) or self._settings.default_preset
            preset = self._preset(preset_name) if preset_name else {}
            merged = merge_layers(preset, spec_layer, meta_layer)
            if preset_name:
                merged["preset"] = preset_name
            if not merged.get("prompt") and not merged.get("variants"):
                raise SpecError(
                    "no prompt: set the object metadata 'prompt' (x-amz-meta-prompt) to the edit you want, e.g. "
                    "'Change the background to a sunset beach. Keep the subject and motion identical.', or "
                    "upload under incoming/<preset>/ with a preset in presets/<preset>.json, or name a "
                    "manifest in x-amz-meta-spec",
                    code="MISSING_PROMPT",
                )
        except SpecError as error:
            self._create_rejected(base_id, upload, error)
            return IntakeResult("clip", detail=error.code)
        layers = expand_variants(merged)
        ids = []
        for layer in layers:
            job_id = base_id if len(layers) == 1 and not layer.get("variant") else job_id_for(
                upload.bucket, upload.key, f"{upload.version}#{layer.get('variant', '')}")
            ids += self._create_from_layer(job_id, upload, layer, video=video, relative_to=self._settings.incoming_prefix)
        return IntakeResult("clip", ids)

    def _folder_preset(self, key: str) -> str | None:
        relative = key[len(self._settings.incoming_prefix):]
        if "/" not in relative:
            return None
        folder = relative.split("/", 1)[0]
        return folder if self._preset_exists(folder) else None

    # --- manifests --------------------------------------------------------------------------

    def _manifest(self, upload: UploadedObject) -> IntakeResult:
        base_id = job_id_for(upload.bucket, upload.key, upload.version)
        try:
            text = self._documents.read_text(upload.ref, max_bytes=MAX_MANIFEST_BYTES)
            if text is None:
                raise SpecError(f"the manifest {upload.key} disappeared before it was read", code="REFERENCE_UNREADABLE")
            document = parse_json_document(text, what=f"manifest {upload.key}")
            check_json_depth(document)
            entries = document if isinstance(document, list) else [document]
            if not entries or len(entries) > MAX_MANIFEST_ENTRIES:
                raise SpecError(f"a manifest lists 1 to {MAX_MANIFEST_ENTRIES} jobs; this one has {len(entries)}",
                                code="INVALID_MANIFEST")
        except SpecError as error:
            self._create_rejected(base_id, upload, error)
            return IntakeResult("manifest", detail=error.code)
        ids: list[str] = []
        for index, entry in enumerate(entries):
            where = "manifest" if len(entries) == 1 else f"manifest[{index}]"
            entry_id = base_id if len(entries) == 1 else job_id_for(upload.bucket, upload.key, f"{upload.version}#{index}")
            try:
                layer = parse_manifest(entry, where=where)
                preset = self._preset(layer["preset"]) if layer.get("preset") else {}
                layers = expand_variants(merge_layers(preset, layer))
            except SpecError as error:
                self._create_rejected(entry_id, upload, error)
                continue
            for variant_layer in layers:
                job_id = entry_id if not variant_layer.get("variant") else job_id_for(
                    upload.bucket, upload.key, f"{upload.version}#{index}#{variant_layer['variant']}")
                ids += self._create_from_layer(job_id, upload, variant_layer, video=None, relative_to="")
        return IntakeResult("manifest", ids)

    # --- batches ----------------------------------------------------------------------------

    def _batch(self, upload: UploadedObject) -> IntakeResult:
        batch_id = "b-" + job_id_for(upload.bucket, upload.key, upload.version)[2:]
        existing = self._batches.get_batch(batch_id)
        if existing and existing.get("expanded"):
            return IntakeResult("batch", detail="already expanded")
        try:
            meta_layer, extra = metadata_layer(self._head_metadata(upload.ref))
            rows = self.batch_rows(batch_id, upload, self._documents.iter_lines(upload.ref), meta_layer,
                                   extra.get("preset"))
        except SpecError as error:
            # The file as a whole is unusable (header, encoding, size): one REJECTED job says why.
            self._create_rejected(job_id_for(upload.bucket, upload.key, upload.version), upload, error)
            return IntakeResult("batch", detail=error.code)
        chunks = max(1, math.ceil(len(rows) / ROWS_PER_CHUNK))
        rejected = sum(1 for r in rows if r["status"] == JobStatus.REJECTED.value)
        now = iso(self._clock.now())
        self._batches.create_batch({
            "batch_id": batch_id, "source_bucket": upload.bucket, "source_key": upload.key,
            "source_version_id": upload.version_id, "results_key": results_key_for(upload.key),
            "total": len(rows), "chunks_total": chunks, "created_at": now, "updated_at": now,
            "counts": {JobStatus.RECEIVED.value: len(rows) - rejected, JobStatus.REJECTED.value: rejected},
            "batch_status": "EXPANDING",
        })
        messages = [
            {"clipedit": "expand", "batch_id": batch_id, "chunk": index, "jobs": rows[start:start + ROWS_PER_CHUNK]}
            for index, start in enumerate(range(0, max(len(rows), 1), ROWS_PER_CHUNK))
        ]
        self._queue.send_all(messages)
        return IntakeResult("batch", detail=f"{len(rows)} rows in {chunks} chunks")

    def batch_rows(self, batch_id: str, upload: UploadedObject, lines: Iterable[str], meta_layer: dict[str, Any],
                   batch_preset: str | None) -> list[dict[str, Any]]:
        """Each row as the fields of its job (RECEIVED, or REJECTED with its code); creates nothing.
        Also what ``clipedit batch --plan`` judges rows with. SpecError: the file as a whole is unusable."""
        presets: dict[str, dict[str, Any]] = {}

        def preset(name: str | None) -> dict[str, Any]:
            if not name:
                return {}
            if name not in presets:
                presets[name] = self._preset(name)
            return presets[name]

        preset(batch_preset)  # a missing batch-level preset fails the whole batch, once
        return [self._row_job(batch_id, upload, row, meta_layer, batch_preset, preset)
                for row in parse_batch(upload.key, lines)]

    def job_from_fields(self, fields: Mapping[str, Any]) -> Job:
        return self._job_from_fields(fields)

    def _row_job(self, batch_id: str, upload: UploadedObject, row: BatchRow, meta_layer: dict[str, Any],
                 batch_preset: str | None, preset: Callable[[str | None], dict[str, Any]]) -> dict[str, Any]:
        job_id = job_id_for(upload.bucket, upload.key, f"{upload.version}#row{row.row}")
        base = {"job_id": job_id, "batch_id": batch_id, "batch_row": row.row, "input_bucket": upload.bucket,
                "input_key": upload.key, "input_version_id": upload.version_id}
        try:
            if row.error:
                raise row.error
            preset_name = row.layer.get("preset") or batch_preset
            layer = merge_layers(preset(preset_name), meta_layer, row.layer,
                                 {"tags": row.variables} if row.variables else {})
            if preset_name:
                layer["preset"] = preset_name
            job = self._job_from_layer(job_id, upload, layer, video=None, relative_to="", variables=row.variables)
        except SpecError as error:
            message = error.message if error.message.startswith("line ") else f"line {row.line}: {error.message}"
            return {**base, "status": JobStatus.REJECTED.value, "error_code": error.code, "error_message": message}
        return {**_job_fields(job), **base}

    def expand_chunk(self, message: Mapping[str, Any]) -> list[str]:
        """Create one chunk's job records; returns the RECEIVED ones, to be submitted."""
        ids = []
        for fields in message["jobs"]:
            job = self._job_from_fields(fields)
            created = self._jobs.create(job)
            if created:
                self._recorder.created(job)  # its first event (the batch already counts it)
            current = job if created else self._jobs.get(job.job_id)
            if current is not None and current.status == JobStatus.RECEIVED:
                ids.append(job.job_id)
        batch = self._batches.mark_chunk_expanded(message["batch_id"], int(message["chunk"]), now=iso(self._clock.now()))
        if batch is not None:
            self._recorder.complete_if_done(batch)
        return ids

    # --- job records ------------------------------------------------------------------------

    def _create_from_layer(self, job_id: str, upload: UploadedObject, layer: Mapping[str, Any], *,
                           video: MediaRef | None, relative_to: str) -> list[str]:
        try:
            job = self._job_from_layer(job_id, upload, layer, video=video, relative_to=relative_to)
        except SpecError as error:
            self._create_rejected(job_id, upload, error, variant=layer.get("variant"))
            return []
        if self._jobs.create(job):
            self._recorder.created(job)  # RECEIVED is a status change too: users see the job appear
            return [job.job_id]
        existing = self._jobs.get(job.job_id)
        return [job.job_id] if existing and not existing.terminal else []

    def _job_from_layer(self, job_id: str, upload: UploadedObject, layer: Mapping[str, Any], *,
                        video: MediaRef | None, relative_to: str, variables: Mapping[str, str] | None = None) -> Job:
        spec = resolve(layer, self._settings.defaults, inbox_bucket=self._settings.inbox_bucket,
                       allowed_buckets=self._settings.allowed_buckets, video=video, variables=variables)
        output_key = render_output_key(spec, job_id=job_id, output_prefix=self._settings.output_prefix,
                                       relative_to=relative_to, variables=variables)
        return self._new_job(job_id, upload, JobStatus.RECEIVED, spec=spec, planned_output_key=output_key)

    def _new_job(self, job_id: str, upload: UploadedObject, status: JobStatus, *, spec: ResolvedSpec | None = None,
                 **fields: Any) -> Job:
        now = iso(self._clock.now())
        history = [{"status": JobStatus.RECEIVED.value, "at": now}]
        if status != JobStatus.RECEIVED:
            history.append({"status": status.value, "at": now})
        job = Job(job_id=job_id, status=status, input_bucket=upload.bucket, input_key=upload.key,
                  input_version_id=upload.version_id, input_size=upload.size, provider=self._provider,
                  created_at=now, updated_at=now, status_history=history, **fields)
        if spec is not None:
            video = spec.video
            job.prompt, job.mode, job.model, job.keep_audio = spec.prompt, spec.mode.value, spec.model.value, spec.keep_audio
            job.provider = spec.provider.value
            job.video_ref = {k: v for k, v in (("bucket", video.bucket), ("key", video.key),
                                               ("version_id", video.version_id), ("url", video.url)) if v}
            job.image_urls = [str(ref) for ref in spec.images] or None
            job.elements = [{"frontal": str(e.frontal), "references": [str(r) for r in e.references]}
                            for e in spec.elements] or None
            job.tags = dict(spec.tags) or None
            job.variant, job.preset = spec.variant, spec.preset
            job.framing = spec.framing.to_record() if not spec.framing.is_default else None
        return job

    def _create_rejected(self, job_id: str, upload: UploadedObject, error: SpecError, *, variant: str | None = None) -> None:
        now = iso(self._clock.now())
        job = self._new_job(job_id, upload, JobStatus.REJECTED, error_code=error.code, error_message=error.message,
                            finished_at=now, variant=variant)
        if self._jobs.create(job):
            self._recorder(job, None)

    def _job_from_fields(self, fields: Mapping[str, Any]) -> Job:
        now = iso(self._clock.now())
        status = JobStatus(fields["status"])
        history = [{"status": JobStatus.RECEIVED.value, "at": now}]
        if status != JobStatus.RECEIVED:
            history.append({"status": status.value, "at": now})
        known = {k: v for k, v in fields.items() if k != "status"}
        if status == JobStatus.REJECTED:
            known["finished_at"] = now
        provider = known.pop("provider", None) or self._provider
        return Job(status=status, created_at=now, updated_at=now, status_history=history, provider=provider,
                   **known)

    # --- presets and referenced manifests -----------------------------------------------------

    def _preset_exists(self, name: str) -> bool:
        """Existence only: a folder preset that exists but is broken must be reported, not skipped."""
        if not name or "/" in name or name.startswith("."):
            return False
        key = f"{self._settings.presets_prefix}{name}.json"
        try:
            return self._documents.read_text(ObjectRef(self._settings.inbox_bucket, key), max_bytes=MAX_PRESET_BYTES) is not None
        except SpecError:
            return True  # too large: _preset reports it

    def _preset(self, name: str) -> dict[str, Any]:
        if not name or "/" in name or name.startswith("."):
            raise SpecError(f"preset name {name!r} is not valid", code="UNKNOWN_PRESET")
        key = f"{self._settings.presets_prefix}{name}.json"
        text = self._documents.read_text(ObjectRef(self._settings.inbox_bucket, key), max_bytes=MAX_PRESET_BYTES)
        if text is None:
            raise SpecError(f"preset {name!r} does not exist: create s3://{self._settings.inbox_bucket}/{key}",
                            code="UNKNOWN_PRESET")
        document = parse_json_document(text, what=f"preset {name!r}")
        check_json_depth(document, where=f"preset {name!r}")
        return parse_preset(document, name=name)

    def _manifest_at(self, key: str) -> dict[str, Any]:
        text = self._documents.read_text(ObjectRef(self._settings.inbox_bucket, key), max_bytes=MAX_MANIFEST_BYTES)
        if text is None:
            raise SpecError(f"the spec {key!r} named in x-amz-meta-spec does not exist in the inbox", code="REFERENCE_UNREADABLE")
        document = parse_json_document(text, what=f"spec {key}")
        check_json_depth(document)
        return parse_manifest(document, where=f"spec {key}")


def _job_fields(job: Job) -> dict[str, Any]:
    """The serialisable fields of a RECEIVED job (carried in an expand message)."""
    names = ("job_id", "input_bucket", "input_key", "input_version_id", "input_size", "prompt", "mode", "model",
             "provider", "keep_audio", "video_ref", "image_urls", "elements", "planned_output_key", "tags", "variant", "preset", "framing")
    return {"status": job.status.value, **{n: getattr(job, n) for n in names if getattr(job, n) is not None}}
