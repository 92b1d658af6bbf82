"""Edit manifests: the user's full request, in the field names of the provider APIs they know.

A manifest names a video (``video_url``), a ``prompt``, up to 4 reference ``image_urls``
(``@Image1``..), ``elements`` (``@Element1``..; a frontal image plus 1-3 reference images),
``mode``, ``keep_audio``, ``model``, an optional ``preset``, an ``output_key`` template, free
``tags`` and ``variants`` (named overrides: one job each).

Precedence, lowest first: defaults < preset < manifest < variant. Scalars are replaced, ``tags``
are merged key by key, lists (``image_urls``, ``elements``) are replaced as a whole.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from clipedit.domain.errors import SpecError
from clipedit.domain.prepare_plan import FRAMING_FIELDS, Framing, check_provider_framing, parse_framing
from clipedit.domain.prompt import check_references
from clipedit.domain.spec import MAX_PROMPT_CHARS, Mode, Model, Provider, SpecDefaults

MAX_REFERENCES = 4  # images + elements, with a reference video (Kling and fal agree)
MAX_ELEMENT_REFERENCES = 3
MAX_TAGS = 50
MAX_VARIANTS = 20
MAX_KEY_BYTES = 1024  # S3's key limit
MAX_JSON_DEPTH = 20
# A manifest document's limits, wherever it arrives (an upload, the status API's POST /jobs).
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MANIFEST_ENTRIES = 500
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")

SPEC_FIELDS = frozenset(
    {"video_url", "prompt", "image_urls", "elements", "mode", "keep_audio", "model", "provider", "preset",
     "output_key", "tags", "variants", *FRAMING_FIELDS}
)
VARIANT_FIELDS = SPEC_FIELDS - {"preset", "variants"} | {"name"}
PRESET_FIELDS = SPEC_FIELDS - {"preset", "video_url"}


# --- references to media ------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaRef:
    """Where a piece of media is: an object in S3 or an https URL."""

    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    url: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def __str__(self) -> str:
        if self.url:
            return self.url
        suffix = f"?versionId={self.version_id}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{suffix}"

    @property
    def name(self) -> str:
        """The path part, for output key templates (``dir/stem.ext``)."""
        return self.key if self.key is not None else urlsplit(self.url or "").path.lstrip("/")


def _check_key(key: str, field_name: str) -> str:
    if not key or key.startswith("/") or any(part in ("..", ".") for part in key.split("/")):
        raise SpecError(f"{field_name}: {key!r} is not a usable object key", code="INVALID_URL")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key) or len(key.encode()) > MAX_KEY_BYTES:
        raise SpecError(f"{field_name}: the key has control characters or is too long", code="INVALID_URL")
    return key


def stored_ref(value: Any) -> MediaRef:
    """A reference as stored on the job: a {bucket,key,version_id}/{url} map or an s3:// / https:// string."""
    if isinstance(value, dict):
        return MediaRef(bucket=value.get("bucket"), key=value.get("key"), version_id=value.get("version_id"),
                        url=value.get("url"))
    if value.startswith("s3://"):
        bucket, _, key = value[5:].partition("/")
        return MediaRef(bucket=bucket, key=key)
    return MediaRef(url=value)


def parse_media_ref(value: Any, *, field_name: str, inbox_bucket: str, allowed_buckets: frozenset[str] = frozenset()) -> MediaRef:
    """``https://…``, ``s3://bucket/key`` (the inbox, or a bucket the deployer allowed), or a bare
    key in the inbox bucket. Anything else (``http://``, ``file://``, other buckets) is refused."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{field_name} must be a non-empty string", code="INVALID_URL")
    value = value.strip()
    scheme = value.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) else ""
    if scheme == "https":
        parts = urlsplit(value)
        if not parts.netloc:
            raise SpecError(f"{field_name}: {value!r} has no host", code="INVALID_URL")
        return MediaRef(url=value)
    if scheme == "s3":
        parts = urlsplit(value)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if bucket != inbox_bucket and bucket not in allowed_buckets:
            raise SpecError(
                f"{field_name}: bucket {bucket!r} is not the inbox; put the file in the inbox bucket "
                "or ask the deployer to allow that bucket",
                code="BUCKET_NOT_ALLOWED",
            )
        return MediaRef(bucket=bucket, key=_check_key(key, field_name))
    if scheme:
        raise SpecError(
            f"{field_name}: {scheme}:// URLs are not accepted; use https://, s3://bucket/key or a key in the inbox",
            code="INVALID_URL",
        )
    return MediaRef(bucket=inbox_bucket, key=_check_key(value, field_name))


# --- the spec -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ElementSpec:
    frontal: MediaRef
    references: tuple[MediaRef, ...]


@dataclass(frozen=True)
class ResolvedSpec:
    """One job's request after presets, manifest and variant are merged and checked."""

    prompt: str
    mode: Mode
    model: Model
    keep_audio: bool
    video: MediaRef | None
    provider: Provider = Provider.KLING
    images: tuple[MediaRef, ...] = ()
    elements: tuple[ElementSpec, ...] = ()
    output_key_template: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    variant: str | None = None
    preset: str | None = None
    framing: Framing = field(default_factory=Framing)


def check_json_depth(value: Any, *, limit: int = MAX_JSON_DEPTH, where: str = "manifest") -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise SpecError(f"the {where} is nested more than {limit} levels deep", code="MANIFEST_TOO_DEEP")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_json_document(text: str, *, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(
            f"the {what} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
            code="INVALID_JSON",
        ) from None


def check_fields(obj: Any, allowed: frozenset[str], *, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SpecError(f"the {where} must be a JSON object, got {type(obj).__name__}", code="INVALID_MANIFEST")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise SpecError(
            f"the {where} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            code="UNKNOWN_FIELD",
        )
    return obj


def _expect(value: Any, types: tuple[type, ...], name: str, kind: str) -> Any:
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise SpecError(f"{name} must be {kind}, got {json.dumps(value)[:60]}", code="INVALID_TYPE")
    return value


def _layer(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Type-check one layer (preset, manifest or variant); keep only the fields it sets."""
    out: dict[str, Any] = {}
    for name, value in obj.items():
        if value is None:
            continue
        label = f"{where}.{name}"
        if name in ("prompt", "output_key", "preset", "video_url", "name"):
            out[name] = _expect(value, (str,), label, "a string")
        elif name in ("mode", "model", "provider"):
            out[name] = _expect(value, (str,), label, "a string").strip().lower()
        elif name in ("keep_audio", "normalize"):
            out[name] = _expect(value, (bool,), label, "true or false")
        elif name in ("platform", "aspect_ratio", "reframe", "focus", "trim", "video_mode", "shot_type", "long_clip",
                      "seam"):
            out[name] = _expect(value, (str,), label, "a string")
        elif name == "overlap":
            out[name] = _expect(value, (int, float, str), label, "seconds (e.g. 0.5)")
        elif name == "duration":
            out[name] = _expect(value, (str, int), label, "whole seconds")
        elif name == "image_urls":
            items = _expect(value, (list,), label, "a list of URLs")
            out[name] = [_expect(item, (str,), f"{label}[{i}]", "a URL string") for i, item in enumerate(items)]
        elif name == "elements":
            items = _expect(value, (list,), label, "a list of elements")
            elements = []
            for i, element in enumerate(items):
                element = check_fields(element, frozenset({"frontal_image_url", "reference_image_urls"}),
                                       where=f"{label}[{i}]")
                if not element.get("frontal_image_url"):
                    raise SpecError(f"{label}[{i}] needs a frontal_image_url", code="ELEMENT_WITHOUT_FRONTAL")
                refs = _expect(element.get("reference_image_urls", []), (list,), f"{label}[{i}].reference_image_urls", "a list")
                if not 1 <= len(refs) <= MAX_ELEMENT_REFERENCES:
                    raise SpecError(
                        f"{label}[{i}] has {len(refs)} reference images; an element takes 1 to {MAX_ELEMENT_REFERENCES}",
                        code="ELEMENT_REFERENCES",
                    )
                elements.append({"frontal_image_url": _expect(element["frontal_image_url"], (str,), f"{label}[{i}].frontal_image_url", "a URL string"),
                                 "reference_image_urls": [_expect(r, (str,), f"{label}[{i}].reference_image_urls", "URL strings") for r in refs]})
            out[name] = elements
        elif name == "tags":
            tags = _expect(value, (dict,), label, "an object of strings")
            if len(tags) > MAX_TAGS:
                raise SpecError(f"{label} has {len(tags)} entries; at most {MAX_TAGS}", code="TOO_MANY_TAGS")
            out[name] = {str(k): _expect(v, (str, int, float), f"{label}.{k}", "a string") for k, v in tags.items()}
            out[name] = {k: str(v) for k, v in out[name].items()}
        elif name == "variants":
            variants = _expect(value, (list,), label, "a list of named overrides")
            if not 1 <= len(variants) <= MAX_VARIANTS:
                raise SpecError(f"{label} must list 1 to {MAX_VARIANTS} variants", code="INVALID_VARIANTS")
            seen: set[str] = set()
            parsed = []
            for i, variant in enumerate(variants):
                variant = check_fields(variant, VARIANT_FIELDS, where=f"{label}[{i}]")
                name_value = variant.get("name")
                if not isinstance(name_value, str) or not VARIANT_NAME.match(name_value):
                    raise SpecError(
                        f"{label}[{i}].name must be 1-64 letters, digits, '-' or '_', starting with a letter or digit",
                        code="INVALID_VARIANTS",
                    )
                if name_value in seen:
                    raise SpecError(f"{label} names {name_value!r} twice", code="INVALID_VARIANTS")
                seen.add(name_value)
                parsed.append(_layer(variant, f"{label}[{i}]"))
            out[name] = parsed
    return out


def parse_manifest(obj: Any, *, where: str = "manifest") -> dict[str, Any]:
    return _layer(check_fields(obj, SPEC_FIELDS, where=where), where)


def parse_preset(obj: Any, *, name: str) -> dict[str, Any]:
    return _layer(check_fields(obj, PRESET_FIELDS, where=f"preset {name!r}"), f"preset {name!r}")


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; tags merge key by key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.items():
            if name == "tags":
                merged["tags"] = {**merged.get("tags", {}), **value}
            else:
                merged[name] = value
    return merged


def expand_variants(merged: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One merged layer per variant (or the merged spec itself when there are none)."""
    variants = merged.get("variants")
    base = {k: v for k, v in merged.items() if k != "variants"}
    if not variants:
        return [base]
    return [merge_layers(base, {**variant, "variant": variant["name"]}) for variant in variants]


def fill_placeholders(template: str, values: Mapping[str, str], *, field_name: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SpecError(
                f"{field_name} uses {{{name}}} but no such column/tag exists; known: {', '.join(sorted(values)) or 'none'}",
                code="UNKNOWN_PLACEHOLDER",
            )
        return values[name]

    return PLACEHOLDER.sub(substitute, template)


def resolve(
    layer: Mapping[str, Any],
    defaults: SpecDefaults,
    *,
    inbox_bucket: str,
    allowed_buckets: frozenset[str] = frozenset(),
    video: MediaRef | None = None,
    variables: Mapping[str, str] | None = None,
) -> ResolvedSpec:
    """Check one merged layer and turn it into a ResolvedSpec. ``video`` (an uploaded clip) wins
    over ``video_url``; ``variables`` (batch columns) fill ``{placeholders}`` in the prompt."""
    values = {**(layer.get("tags") or {}), **(variables or {})}
    prompt = layer.get("prompt")
    if prompt is None or not prompt.strip():
        raise SpecError(
            "no prompt: give 'prompt' in the manifest, a preset, or the x-amz-meta-prompt metadata of the clip",
            code="MISSING_PROMPT",
        )
    prompt = fill_placeholders(prompt.strip(), values, field_name="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise SpecError(f"prompt is {len(prompt)} characters; the provider accepts at most {MAX_PROMPT_CHARS}", code="PROMPT_TOO_LONG")
    try:
        mode = Mode(layer.get("mode") or defaults.mode.value)
    except ValueError:
        raise SpecError(f"mode must be std or pro, got {layer.get('mode')!r}", code="INVALID_MODE") from None
    try:
        model = Model(layer.get("model") or defaults.model.value)
    except ValueError:
        raise SpecError(f"model must be o3 or o1, got {layer.get('model')!r}", code="INVALID_MODEL") from None
    try:
        provider = Provider(layer.get("provider") or defaults.provider.value)
    except ValueError:
        raise SpecError(f"provider must be kling or fal, got {layer.get('provider')!r}",
                        code="INVALID_PROVIDER") from None
    images = tuple(
        parse_media_ref(url, field_name=f"image_urls[{i}]", inbox_bucket=inbox_bucket, allowed_buckets=allowed_buckets)
        for i, url in enumerate(layer.get("image_urls") or [])
    )
    elements = tuple(
        ElementSpec(
            frontal=parse_media_ref(e["frontal_image_url"], field_name=f"elements[{i}].frontal_image_url",
                                    inbox_bucket=inbox_bucket, allowed_buckets=allowed_buckets),
            references=tuple(parse_media_ref(r, field_name=f"elements[{i}].reference_image_urls[{j}]",
                                             inbox_bucket=inbox_bucket, allowed_buckets=allowed_buckets)
                             for j, r in enumerate(e["reference_image_urls"])),
        )
        for i, e in enumerate(layer.get("elements") or [])
    )
    if len(images) + len(elements) > MAX_REFERENCES:
        raise SpecError(
            f"{len(images)} images + {len(elements)} elements = {len(images) + len(elements)}; "
            f"with a video the provider takes at most {MAX_REFERENCES} in all",
            code="TOO_MANY_REFERENCES",
        )
    check_references(prompt, image_count=len(images), element_count=len(elements))
    framing = parse_framing(layer)
    check_provider_framing(framing, provider=provider.value, model=model.value)
    if video is None:
        if not layer.get("video_url"):
            raise SpecError("the manifest names no video_url", code="MISSING_VIDEO")
        video = parse_media_ref(layer["video_url"], field_name="video_url", inbox_bucket=inbox_bucket,
                                allowed_buckets=allowed_buckets)
    return ResolvedSpec(
        prompt=prompt,
        mode=mode,
        model=model,
        keep_audio=layer.get("keep_audio", True),
        video=video,
        provider=provider,
        images=images,
        elements=elements,
        output_key_template=layer.get("output_key"),
        tags=dict(layer.get("tags") or {}),
        variant=layer.get("variant"),
        preset=layer.get("preset"),
        framing=framing,
    )


def render_output_key(
    spec: ResolvedSpec, *, job_id: str, output_prefix: str, relative_to: str, variables: Mapping[str, str] | None = None
) -> str:
    """The output key: ``output_key`` template (placeholders ``{dir}``, ``{stem}``, ``{variant}``,
    ``{job_id}``, tags and batch columns) under the output prefix; by default ``{dir}{stem}.mp4``,
    or ``{dir}{stem}.{variant}.mp4`` for a variant."""
    name = spec.video.name if spec.video else ""
    if relative_to and name.startswith(relative_to):
        name = name[len(relative_to):]
    directory, filename = posixpath.split(name)
    stem = posixpath.splitext(filename)[0]
    values = {**spec.tags, **(variables or {}), "dir": f"{directory}/" if directory else "", "stem": stem,
              "variant": spec.variant or "", "job_id": job_id}
    default = "{dir}{stem}.{variant}.mp4" if spec.variant else "{dir}{stem}.mp4"
    key = fill_placeholders(spec.output_key_template or default, values, field_name="output_key")
    key = output_prefix + key.lstrip("/")
    try:
        return _check_key(key, "output_key")
    except SpecError as error:
        raise SpecError(error.message, code="INVALID_OUTPUT_KEY") from None
