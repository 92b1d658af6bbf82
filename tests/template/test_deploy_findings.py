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


def test_the_jobs_table_uses_the_aws_owned_key_unless_a_customer_key_is_given(cfn):
    sse = cfn["Resources"]["JobsTable"]["Properties"]["SSESpecification"]
    # SSEEnabled true without a key is the AWS-managed aws/dynamodb key (billed KMS calls), not AWS-owned.
    assert sse["SSEEnabled"] == {"Fn::If": ["UseKms", True, False]}
    assert sse["KMSMasterKeyId"] == {"Fn::If": ["UseKms", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]}


def _settings(**variables: str) -> Settings:
    base = {"JOBS_TABLE": "t", "INBOX_BUCKET": "i", "OUTPUTS_BUCKET": "o", "EVENT_BUS_NAME": "b",
            "PROVIDER_SECRET_ID": "s"}
    return Settings.from_env({**base, **variables})


@pytest.mark.parametrize("parameter, variable", [("PollIntervalSeconds", "POLL_INTERVAL_SECONDS"),
                                                 ("JobDeadlineSeconds", "JOB_DEADLINE_SECONDS")])
def test_parameter_bounds_are_the_codes_bounds(template, parameter, variable):
    """A value the template accepts must not stop the functions at cold start."""
    bounds = template["Parameters"][parameter]
    # the large deadline/interval pairings are the poller limit's business: take the other at its kindest
    other = {"POLL_INTERVAL_SECONDS": "3600"} if variable == "JOB_DEADLINE_SECONDS" else {"JOB_DEADLINE_SECONDS": "300"}
    for value in (bounds["MinValue"], bounds["MaxValue"]):
        _settings(**other, **{variable: str(value)})
    with pytest.raises(ConfigError, match=variable):
        _settings(**other, **{variable: str(bounds["MaxValue"] + 1)})


def test_the_template_defaults_fit_the_poller_limits(template):
    defaults = parameter_defaults(template)
    _settings(POLL_INTERVAL_SECONDS=defaults["PollIntervalSeconds"], JOB_DEADLINE_SECONDS=defaults["JobDeadlineSeconds"],
              EXECUTION_TIMEOUT_SECONDS=defaults["ExecutionTimeoutSeconds"])
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["EXECUTION_TIMEOUT_SECONDS"] == {"Ref": "ExecutionTimeoutSeconds"}


def test_a_5_second_poll_with_a_week_long_deadline_is_refused_at_cold_start():
    # 120,960 poll cycles: the execution would stop at Step Functions' 25,000 history events.
    with pytest.raises(ConfigError, match="25,000 history events"):
        _settings(POLL_INTERVAL_SECONDS="5", JOB_DEADLINE_SECONDS="604800")


def test_an_execution_timeout_before_the_deadline_is_refused_at_cold_start():
    with pytest.raises(ConfigError, match="EXECUTION_TIMEOUT_SECONDS"):
        _settings(POLL_INTERVAL_SECONDS="300", JOB_DEADLINE_SECONDS="3600", EXECUTION_TIMEOUT_SECONDS="3700")


def test_a_submit_batch_against_a_hanging_provider_finishes_within_the_function_timeout(template):
    """Timeout, batch and HTTP timeouts sized together: a timed-out batch fails all its messages."""
    from clipedit.adapters.provider_http import API_TIMEOUT
    from clipedit.config import Settings as S
    from local.template import function_spec

    batch = template["Resources"]["SubmitFunction"]["Properties"]["Events"]["Intake"]["Properties"]["BatchSize"]
    per_call = API_TIMEOUT["connect"] + API_TIMEOUT["read"]  # the longest a provider call can hang
    breaker = S.__dataclass_fields__["breaker_failure_threshold"].default  # slow calls before the breaker opens
    aws_work_per_message = 5.0  # S3 probe reads, DynamoDB writes, the presign: seconds, with room
    worst = breaker * per_call + batch * aws_work_per_message
    timeout = function_spec(template, "SubmitFunction")["timeout"]
    assert worst <= timeout, f"a batch of {batch} can take {worst:.0f} s; the function stops at {timeout} s"
    assert template["Resources"]["IntakeQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_every_function_and_api_logs_into_a_group_that_expires(template):
    groups = {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    functions = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    named = {p.get("LogGroupName", {}).get("Fn::Sub") for p in groups.values()}
    assert {f"/aws/lambda/${{{f}}}" for f in functions} <= named
    assert all(p["RetentionInDays"] == {"Ref": "LogRetentionDays"} for p in groups.values())
    for api in ("CallbackApi", "StatusApi"):
        settings = template["Resources"][api]["Properties"]["AccessLogSettings"]
        assert settings["DestinationArn"] == {"Fn::GetAtt": [f"{api}AccessLogs", "Arn"]}
        assert "queryString" not in settings["Format"] and "$context.requestId" in settings["Format"]  # no tokens


def test_layer_names_are_scoped_to_the_stack(template):
    for layer in ("SharedLayer", "MediaLayer"):
        assert template["Resources"][layer]["Properties"]["LayerName"]["Fn::Sub"].startswith("${AWS::StackName}-")


def test_the_customer_key_is_usable_only_through_the_services_that_hold_data(cfn):
    keyed = [st for _, st in _statements(cfn) if isinstance(st, dict) and "Fn::If" in st
             and st["Fn::If"][1].get("Sid") == "CustomerKey"]
    assert len(keyed) >= 4
    for statement in keyed:
        services = statement["Fn::If"][1]["Condition"]["StringLike"]["kms:ViaService"]
        assert [s["Fn::Sub"].split(".")[0] for s in services] == ["s3", "sqs", "dynamodb"]


def test_the_layer_pins_the_botocore_the_xray_sdk_pulls_in_with_its_boto3():
    from local.template import ROOT

    def pins(path):
        return {line.split("==")[0].lower(): line.split("==")[1].strip()
                for line in (ROOT / path).read_text().splitlines() if "==" in line and not line.startswith("#")}

    layer, lock = pins("layers/clipedit/python/requirements.txt"), pins("requirements-dev.lock")
    assert "aws-xray-sdk" in layer  # the reason botocore is in the layer at all
    assert layer["botocore"] == lock["botocore"] and layer["boto3"] == lock["boto3"]
