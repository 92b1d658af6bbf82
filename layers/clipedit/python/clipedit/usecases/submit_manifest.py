"""Submit a manifest through the API (``POST /jobs``) or the command line.

The manifest is checked first (a bad one is answered at once with the same codes a REJECTED job
would carry), then stored under the inbox's jobs prefix, where intake turns it into jobs exactly
as if the user had uploaded it: one path into the pipeline, one set of rules. The media it names
must already be in the inbox (or an allowed bucket) or at https URLs.

Job ids are known as soon as the manifest is stored: they derive from its object version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from clipedit.domain.errors import SpecError
from clipedit.domain.keys import job_id_for
from clipedit.domain.manifest import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_ENTRIES,
    check_json_depth,
    expand_variants,
    parse_manifest,
    resolve,
)
from clipedit.domain.spec import SpecDefaults
from clipedit.ports import ManifestWriter


def manifest_job_ids(bucket: str, key: str, version: str, entries: list[dict[str, Any]]) -> list[str]:
    """The ids intake gives a manifest's jobs (mirrors ``Intake._manifest``): the object version's
    id for a single entry, ``#index`` per entry of a list, ``#index#variant`` per variant. Variants
    that come only from a preset are not known here."""
    ids = []
    for index, entry in enumerate(entries):
        entry_version = version if len(entries) == 1 else f"{version}#{index}"
        variants = entry.get("variants") or []
        if not variants:
            ids.append(job_id_for(bucket, key, entry_version))
        for variant in variants:
            ids.append(job_id_for(bucket, key, f"{version}#{index}#{variant['name']}"))
    return ids


@dataclass(frozen=True)
class SubmittedManifest:
    bucket: str
    key: str
    version_id: str | None
    job_ids: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"manifest": f"s3://{self.bucket}/{self.key}", "version_id": self.version_id, "job_ids": self.job_ids}


class SubmitManifest:
    def __init__(self, *, writer: ManifestWriter, inbox_bucket: str, jobs_prefix: str,
                 allowed_buckets: frozenset[str], defaults: SpecDefaults) -> None:
        self._writer = writer
        self._bucket = inbox_bucket
        self._prefix = jobs_prefix
        self._allowed = allowed_buckets
        self._defaults = defaults

    def __call__(self, document: Any, *, name: str) -> SubmittedManifest:
        """``name`` makes the key unique (a request id); ``jobs/api/<name>.json``."""
        check_json_depth(document)
        entries = document if isinstance(document, list) else [document]
        if not entries or len(entries) > MAX_MANIFEST_ENTRIES:
            raise SpecError(f"a manifest lists 1 to {MAX_MANIFEST_ENTRIES} jobs; this one has {len(entries)}",
                            code="INVALID_MANIFEST")
        for index, entry in enumerate(entries):
            where = "manifest" if len(entries) == 1 else f"manifest[{index}]"
            layer = parse_manifest(entry, where=where)
            if not layer.get("preset"):  # a preset may supply the prompt: intake checks those
                for variant_layer in expand_variants(layer):
                    resolve(variant_layer, self._defaults, inbox_bucket=self._bucket, allowed_buckets=self._allowed)
        text = json.dumps(document, ensure_ascii=False)
        if len(text.encode()) > MAX_MANIFEST_BYTES:
            raise SpecError(f"the manifest is over {MAX_MANIFEST_BYTES} bytes", code="MANIFEST_TOO_LARGE")
        key = f"{self._prefix}api/{name}.json"
        version = self._writer.put_manifest(self._bucket, key, text)
        if version is None:  # the inbox is versioned by the template; ids depend on it
            raise RuntimeError(f"the inbox bucket {self._bucket} returned no object version: is versioning on?")
        return SubmittedManifest(self._bucket, key, version, manifest_job_ids(self._bucket, key, version, entries))
