"""docs/reference/events.md from the JSON Schemas in events/schemas/: one table of detail fields
per event, in the words of the schema (its title, description and each property's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.refs.code_scan import ROOT
from tools.refs.markdown import banner, code, table

SCHEMAS = ROOT / "events" / "schemas"


def _type(spec: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in spec:
        return _type(defs[spec["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in spec:
        return " | ".join(code(value) if value is not None else "`null`" for value in spec["enum"])
    if "oneOf" in spec or "anyOf" in spec:
        return " or ".join(_type(option, defs) for option in spec.get("oneOf", spec.get("anyOf")))
    kind = spec.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(kinds)
    if "format" in spec:
        text += f" ({spec['format']})"
    if "pattern" in spec:
        text += f", pattern {code(spec['pattern'])}"
    return text


def _event(path: Path) -> str:
    schema = json.loads(path.read_text())
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    title = schema["title"].removeprefix("clipedit ")
    rows = ((code(name), _type(spec, defs), "yes" if name in required else "", spec.get("description", ""))
            for name, spec in schema["properties"].items())
    return (f"\n## {title}\n\n{schema.get('description', '')}\n\n"
            f"Schema: `events/schemas/{path.name}`"
            f"{' (no other fields)' if schema.get('additionalProperties') is False else ''}.\n\n"
            + table(("field", "type", "always", "description"), rows))


def render() -> str:
    out = [banner("the JSON Schemas in events/schemas/"), "# Event fields\n\n",
           "Every event clipedit publishes on the stack's bus (output `EventBusName`) has source "
           "`clipedit.jobs`; the tables below are the `detail` of each detail-type.\n"]
    out += [_event(path) for path in sorted(SCHEMAS.glob("*.schema.json"))]
    return "".join(out)
