"""What the template does once deployed, checked on the CloudFormation the SAM transform makes:
grants that parameters promise, encryption defaults, parameter bounds against the code's own
bounds. Each test names the finding of issue 15 it guards."""

from __future__ import annotations

from typing import Any

import pytest

from clipedit.config import Settings
from clipedit.domain.errors import ConfigError
from local.template import parameter_defaults
from tests.template.test_template import _statements, cfn, template  # noqa: F401 - fixtures

BUCKETS = ["media-archive", "partner-drops"]


def _evaluate(value: Any, parameters: dict[str, Any]) -> Any:
    """The few intrinsics the grants use, for one set of parameter values."""
    if isinstance(value, dict) and len(value) == 1:
        (name, argument), = value.items()
        if name == "Ref":
            return parameters.get(argument, {"AWS::Partition": "aws"}.get(argument, argument))
        if name == "Fn::Join":
            separator, items = argument
            items = _evaluate(items, parameters)
            return separator.join(str(_evaluate(item, parameters)) for item in items)
        if name == "Fn::Split":
            separator, text = argument
            return str(_evaluate(text, parameters)).split(separator)
        if name == "Fn::Not":
            return not _evaluate(argument[0], parameters)
        if name == "Fn::Equals":
            return _evaluate(argument[0], parameters) == _evaluate(argument[1], parameters)
    if isinstance(value, list):
        return [_evaluate(item, parameters) for item in value]
    return value


def _statement(cfn: dict[str, Any], role: str, sid: str) -> tuple[str, dict[str, Any]]:
    """(condition name, statement) of a conditional statement ``!If [condition, statement, NoValue]``."""
    statements = cfn["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for statement in statements:
        if isinstance(statement, dict) and "Fn::If" in statement:
            condition, chosen, _ = statement["Fn::If"]
            if chosen.get("Sid") == sid:
                return condition, chosen
    raise AssertionError(f"{role} has no conditional statement {sid}")


@pytest.mark.parametrize("role", ["SubmitFunctionRole", "PrepareFunctionRole"])
def test_allowed_input_buckets_are_readable_by_the_functions_that_read_clips(cfn, role):
    condition, statement = _statement(cfn, role, "ReadAllowedInputBuckets")
    when = cfn["Conditions"][condition]
    assert _evaluate(when, {"AllowedInputBuckets": BUCKETS}) is True
    assert _evaluate(when, {"AllowedInputBuckets": [""]}) is False  # the default: the inbox only
    assert {"s3:GetObject", "s3:GetObjectVersion"} <= set(statement["Action"])
    assert _evaluate(statement["Resource"], {"AllowedInputBuckets": BUCKETS}) == [
        "arn:*:s3:::media-archive/*", "arn:*:s3:::partner-drops/*"]
    _, decrypt = _statement(cfn, role, "DecryptAllowedInputBuckets")
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"]["StringLike"]["kms:ViaService"] == "s3.*.amazonaws.com"
    assert _evaluate(decrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"],
                     {"AllowedInputBuckets": BUCKETS}) == ["arn:*:s3:::media-archive/*", "arn:*:s3:::partner-drops/*"]


def test_no_other_role_reads_the_allowed_input_buckets(cfn):
    readers = {logical_id for logical_id, statement in _statements(cfn) if "AllowedInputBuckets" in str(statement)}
    assert readers <= {"SubmitFunctionRole", "PrepareFunctionRole"}
