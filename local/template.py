"""Read template.yaml without the SAM transform, for the offline local stack and the tests.

The local stack cannot run CloudFormation, so it reads what it needs straight from the template:
parameter defaults, each function's code location, handler, limits and environment, and the
state machine definition with its ``${Name}`` placeholders filled in. Keeping this in one place
means the local stack follows the template instead of restating it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"

__all__ = [
    "ROOT",
    "TEMPLATE_PATH",
    "function_spec",
    "load_template",
    "parameter_defaults",
    "render_state_machine",
]

# Short tag -> long form. "Ref" and "Condition" keep their bare names; the rest are "Fn::<Name>".
_BARE_TAGS = {"Ref", "Condition"}
_FN_TAGS = (
    "Sub",
    "GetAtt",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Base64",
    "ImportValue",
    "GetAZs",
    "Cidr",
    "Transform",
    "Length",
    "ToJsonString",
)

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that understands CloudFormation's short intrinsic-function tags. libyaml's parser
    when PyYAML has it (the same document, 25x faster: every local stack and template test parses
    the template)."""


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _make_constructor(key: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {key: _construct_node(loader, node)}

    return construct


def _construct_getatt(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if isinstance(value, str):
        # "Resource.Attribute" (the attribute itself may contain dots, e.g. Endpoint.Address).
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {"Fn::GetAtt": value}


for _tag in _BARE_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _make_constructor(_tag))
for _tag in _FN_TAGS:
    if _tag != "GetAtt":
        _CfnLoader.add_constructor(f"!{_tag}", _make_constructor(f"Fn::{_tag}"))
_CfnLoader.add_constructor("!GetAtt", _construct_getatt)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template, turning short tags into their JSON long forms."""
    with Path(path).open(encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict) or "Resources" not in template:
        raise ValueError(f"{path} is not a CloudFormation template (no Resources)")
    return template


def _resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    try:
        return template["Resources"][logical_id]
    except KeyError:
        raise KeyError(f"resource {logical_id!r} is not in the template") from None


def render_state_machine(template: dict[str, Any], substitutions: dict[str, str]) -> str:
    """Return PollerStateMachine's definition with every ``${Name}`` replaced, as JSON text.

    The substitution is textual, as CloudFormation's DefinitionSubstitutions is: an unquoted
    placeholder becomes a JSON number. Raises KeyError naming the placeholders that
    ``substitutions`` does not cover, and ValueError if the result is not valid JSON.
    """
    properties = _resource(template, "PollerStateMachine")["Properties"]
    definition_path = ROOT / properties["DefinitionUri"]
    text = definition_path.read_text(encoding="utf-8")

    missing = sorted({name for name in _PLACEHOLDER.findall(text) if name not in substitutions})
    if missing:
        raise KeyError(f"unresolved placeholders in {definition_path.name}: {', '.join(missing)}")

    rendered = _PLACEHOLDER.sub(lambda match: str(substitutions[match.group(1)]), text)
    try:
        json.loads(rendered)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{definition_path.name} is not valid JSON after substitution: {exc}") from exc
    return rendered


def function_spec(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """Code location, handler, limits and environment of one function, Globals merged in.

    Environment values stay in CloudFormation form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``);
    resolving them is the caller's job.
    """
    resource = _resource(template, logical_id)
    if resource.get("Type") != "AWS::Serverless::Function":
        raise ValueError(f"{logical_id!r} is not an AWS::Serverless::Function")
    globals_ = template.get("Globals", {}).get("Function", {})
    properties = resource.get("Properties", {})

    def pick(name: str) -> Any:
        return properties.get(name, globals_.get(name))

    environment = {
        **globals_.get("Environment", {}).get("Variables", {}),
        **properties.get("Environment", {}).get("Variables", {}),
    }
    return {
        "code_uri": pick("CodeUri"),
        "handler": pick("Handler"),
        "timeout": int(pick("Timeout") or 3),  # Lambda's own default is 3 s
        "memory": int(pick("MemorySize") or 128),  # and 128 MB
        "environment": environment,
    }


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    """Default value of each parameter that has one, as a string (as CloudFormation passes it)."""
    defaults: dict[str, str] = {}
    for name, parameter in template.get("Parameters", {}).items():
        if "Default" in parameter:
            default = parameter["Default"]
            defaults[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
    return defaults


def function_events(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's ``Events`` (event sources) as declared in the template."""
    return _resource(template, logical_id)["Properties"].get("Events", {})
