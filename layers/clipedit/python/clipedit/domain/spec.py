"""What the user asked for: the edit spec, read from an upload's S3 user metadata.

S3 user metadata is small (2 KB in all) and ASCII on the wire, so non-ASCII prompts arrive
RFC 2047-encoded (``=?UTF-8?B?...?=``) when clients follow the S3 docs; both forms are accepted.
"""

from __future__ import annotations

import email.header
from dataclasses import dataclass
from enum import StrEnum
from typing import Mapping

from clipedit.domain.errors import SpecError
from clipedit.domain.prompt import check_references

MAX_PROMPT_CHARS = 2500  # Kling omni-video prompt limit


class Model(StrEnum):
    O3 = "o3"  # Kling VIDEO 3.0 Omni
    O1 = "o1"  # Kling O1


class Provider(StrEnum):
    KLING = "kling"  # Kling's own API (api-singapore.klingai.com)
    FAL = "fal"  # fal.ai's hosted Kling O3/O1 edit (queue.fal.run)


class Mode(StrEnum):
    STD = "std"  # cheaper, faster drafts (720p)
    PRO = "pro"  # final quality (1080p)


@dataclass(frozen=True)
class EditSpec:
    prompt: str
    mode: Mode = Mode.PRO
    model: Model = Model.O3
    keep_audio: bool = True


@dataclass(frozen=True)
class SpecDefaults:
    mode: Mode = Mode.PRO
    model: Model = Model.O3
    provider: Provider = Provider.KLING


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
# Metadata keys we understand, normalised to lower case without the x-amz-meta- prefix.
KNOWN_METADATA = frozenset({"prompt", "mode", "keep-audio", "keep_audio", "model", "provider"})


def _decode_header_value(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        parts = email.header.decode_header(value)
    except Exception:  # malformed encoded-word: keep the raw text, validation will judge it
        return value
    return "".join(
        part.decode(charset or "utf-8", errors="strict") if isinstance(part, bytes) else part
        for part, charset in parts
    )


def _parse_enum(enum_type: type[StrEnum], raw: str | None, default: StrEnum, field: str) -> StrEnum:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_type)  # type: ignore[attr-defined]
        raise SpecError(
            f"{field} must be one of {allowed}; got {raw!r}", code=f"INVALID_{field.upper()}"
        ) from None


def parse_bool(raw: str | None, *, field: str, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SpecError(
        f"{field} must be true or false; got {raw!r}", code=f"INVALID_{field.upper().replace('-', '_')}"
    )


def validate_prompt(prompt: str | None, *, image_count: int = 0, element_count: int = 0) -> str:
    if prompt is None or not prompt.strip():
        raise SpecError(
            "no prompt: set the object metadata 'prompt' (x-amz-meta-prompt) to the edit you want, "
            "e.g. 'Change the background to a sunset beach. Keep the subject and motion identical.'",
            code="MISSING_PROMPT",
        )
    prompt = prompt.strip()
    if len(prompt) > MAX_PROMPT_CHARS:
        raise SpecError(
            f"prompt is {len(prompt)} characters; the provider accepts at most {MAX_PROMPT_CHARS}",
            code="PROMPT_TOO_LONG",
        )
    check_references(prompt, image_count=image_count, element_count=element_count)
    return prompt


def spec_from_metadata(metadata: Mapping[str, str], defaults: SpecDefaults) -> EditSpec:
    """Build the spec from S3 user metadata (keys without ``x-amz-meta-``, any case)."""
    meta = {key.lower(): _decode_header_value(value) for key, value in metadata.items()}
    keep_audio_raw = meta.get("keep-audio", meta.get("keep_audio"))
    return EditSpec(
        prompt=validate_prompt(meta.get("prompt")),
        mode=Mode(_parse_enum(Mode, meta.get("mode"), defaults.mode, "mode")),
        model=Model(_parse_enum(Model, meta.get("model"), defaults.model, "model")),
        keep_audio=parse_bool(keep_audio_raw, field="keep-audio", default=True),
    )
