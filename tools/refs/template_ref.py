"""docs/reference/template.md from template.yaml: every parameter (grouped as the console groups
them) with its type, default, allowed values and description, and every output."""

from __future__ import annotations

from typing import Any

from local.template import TEMPLATE_PATH, load_template
from tools.refs.markdown import banner, code, table


def _allowed(spec: dict[str, Any]) -> str:
    parts = []
    if "AllowedValues" in spec:
        parts.append(", ".join(code(value) for value in spec["AllowedValues"]))
    if "MinValue" in spec or "MaxValue" in spec:
        parts.append(f"{spec.get('MinValue', '')}..{spec.get('MaxValue', '')}")
    if "AllowedPattern" in spec:
        parts.append(f"pattern {code(spec['AllowedPattern'])}")
    return "; ".join(parts)


def _default(spec: dict[str, Any]) -> str:
    if "Default" not in spec:
        return "(required)"
    value = str(spec["Default"])
    return code(value) if value else "(empty)"


def _groups(template: dict[str, Any]) -> list[tuple[str, list[str]]]:
    interface = template.get("Metadata", {}).get("AWS::CloudFormation::Interface", {})
    groups = [(group["Label"]["default"], list(group["Parameters"])) for group in interface.get("ParameterGroups", [])]
    grouped = {name for _, names in groups for name in names}
    rest = [name for name in template["Parameters"] if name not in grouped]
    return groups + ([("Other", rest)] if rest else [])


def render() -> str:
    template = load_template(TEMPLATE_PATH)
    parameters = template["Parameters"]
    out = [banner("template.yaml"), "# Template parameters and outputs\n\n",
           f"The {len(parameters)} parameters of `template.yaml` (all have defaults unless marked required) "
           "and its outputs. Set parameters with `sam deploy --guided` or "
           "`--parameter-overrides Name=value`.\n"]
    for label, names in _groups(template):
        out.append(f"\n## {label}\n\n")
        out.append(table(("parameter", "type", "default", "allowed", "description"),
                         ((code(name), parameters[name]["Type"], _default(parameters[name]), _allowed(parameters[name]),
                           parameters[name].get("Description", "")) for name in names)))
    out.append("\n## Outputs\n\nRead them with `aws cloudformation describe-stacks --stack-name <stack> "
               "--query 'Stacks[0].Outputs'`; the `clipedit` command reads them itself (`--stack`).\n\n")
    out.append(table(("output", "description", "only when"),
                     ((code(name), spec.get("Description", ""), spec.get("Condition", ""))
                      for name, spec in template["Outputs"].items())))
    return "".join(out)
