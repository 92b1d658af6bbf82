"""Prompt references: users write ``@Video1``, ``@Image1``.. and ``@Element1``.. (the syntax fal and
most resellers use); Kling's own API wants ``<<<video_1>>>``, ``<<<image_1>>>``, ``<<<element_1>>>``.
One canonical form is kept internally and rewritten per provider."""

from __future__ import annotations

import re

from clipedit.domain.errors import SpecError

_REFERENCE = re.compile(r"@(Video|Image|Element)(\d+)\b", re.IGNORECASE)


def references(prompt: str) -> list[tuple[str, int]]:
    """The (kind, 1-based index) pairs the prompt mentions, kind lower-cased."""
    return [(m.group(1).lower(), int(m.group(2))) for m in _REFERENCE.finditer(prompt)]


def check_references(prompt: str, *, image_count: int, element_count: int) -> None:
    """Every reference must point at an input that exists (``@Image3`` needs three images)."""
    available = {"video": 1, "image": image_count, "element": element_count}
    for kind, index in references(prompt):
        if index < 1 or index > available[kind]:
            have = available[kind]
            raise SpecError(
                f"the prompt mentions @{kind.capitalize()}{index} but the request has "
                f"{have} {kind}{'' if have == 1 else 's'}",
                code="UNKNOWN_REFERENCE",
            )


def to_kling_syntax(prompt: str) -> str:
    """``@Video1`` -> ``<<<video_1>>>``, ``@Image2`` -> ``<<<image_2>>>``, ``@Element1`` -> ``<<<element_1>>>``."""
    return _REFERENCE.sub(lambda m: f"<<<{m.group(1).lower()}_{int(m.group(2))}>>>", prompt)


def to_fal_syntax(prompt: str) -> str:
    """``@video1`` / ``@VIDEO1`` / ``@Image02`` -> ``@Video1`` / ``@Image2``: fal's form, whatever the case."""
    return _REFERENCE.sub(lambda m: f"@{m.group(1).capitalize()}{int(m.group(2))}", prompt)
