"""Offline checks of template.yaml and the poller state machine.

What runs here, and why each check exists:
- cfn-lint and `sam validate --lint`: the template is valid SAM/CloudFormation;
- statelint plus our own transition check on the *rendered* ASL: cfn-lint never reads a
  DefinitionUri file, so without this a dangling Next would only show up at deploy time;
- aws-sam-translator, run in-process: the CloudFormation that SAM generates (roles, event source
  mapping, stage) has the properties the design relies on: least privilege, partial batch
  failures, capped concurrency, private and encrypted buckets.
No network and no AWS account are needed (see /work/shared/reference/aws-offline.md).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from local.template import ROOT, function_spec, load_template, parameter_defaults, render_state_machine

TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent

DUMMY_SUBSTITUTIONS = {
    "FinalizeFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:clipedit-FinalizeFunction-EXAMPLE",
    "ExecutionTimeoutSeconds": "7200",
    "Partition": "aws",
}

OFFLINE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "SAM_CLI_TELEMETRY": "0",
}


def _tool(name: str) -> str:
    """The CLI installed next to the running interpreter (the project venv), else on PATH."""
    candidate = BIN / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, f"{name} is not installed; run `make venv`"
    return found


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"} | OFFLINE_ENV
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, **kwargs)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def definition(template: dict[str, Any]) -> dict[str, Any]:
    return json.loads(render_state_machine(template, DUMMY_SUBSTITUTIONS))


@pytest.fixture(scope="module")
def cfn(template: dict[str, Any]) -> dict[str, Any]:
    """The template after the SAM transform, done offline by aws-sam-translator."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(template)
    # The translator only accepts S3 locations; `sam build`/`sam package` do this rewrite for real.
    for resource in sam["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "DefinitionUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://clipedit-artifacts-example/{properties[key]}"

    class StubManagedPolicyLoader:
        """Policies by AWS-managed name would need IAM; the template uses none, so nothing to map."""

        def load(self) -> dict[str, str]:
            return {}

    return transform(sam, {}, StubManagedPolicyLoader())


def _resources_of_type(cfn: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == resource_type}


def _statements(cfn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every inline IAM statement: roles, managed policies, bucket and queue policies."""
    for logical_id, resource in cfn["Resources"].items():
        properties = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        for key in ("PolicyDocument", "AssumeRolePolicyDocument"):
            if key in properties:
                documents.append(properties[key])
        for document in documents:
            statements = document.get("Statement", [])
            for statement in statements if isinstance(statements, list) else [statements]:
                yield logical_id, statement


def _choose(value: Any, conditions: dict[str, bool]) -> Any:
    """Resolve every Fn::If in ``value`` for one assignment of the template's conditions
    (AWS::NoValue drops the key or list item), so a property can be checked in each world."""
    no_value = {"Ref": "AWS::NoValue"}
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return _choose(when_true if conditions[name] else when_false, conditions)
        chosen = {k: _choose(v, conditions) for k, v in value.items()}
        return {k: v for k, v in chosen.items() if v != no_value}
    if isinstance(value, list):
        return [c for c in (_choose(v, conditions) for v in value) if c != no_value]
    return value


KMS_WORLDS = [{"UseKms": False, "ExpireInputs": False, "ExpireOutputs": False, "ReadOtherInputBuckets": False},
              {"UseKms": True, "ExpireInputs": True, "ExpireOutputs": True, "ReadOtherInputBuckets": False}]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(cfn: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in cfn["Resources"][role_id]["Properties"].get("Policies", [])
        for statement in _as_list(policy["PolicyDocument"]["Statement"])
        if statement.get("Effect") == "Allow"
    ]


def _role_actions(cfn: dict[str, Any], role_id: str) -> set[str]:
    """Actions a role's inline policies allow (its trust policy is not a permission)."""
    return {
        action
        for policy in cfn["Resources"][role_id]["Properties"].get("Policies", [])
        for statement in _as_list(policy["PolicyDocument"]["Statement"])
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement.get("Action", []))
    }


# ---------------------------------------------------------------------------- linters


def test_cfn_lint_passes() -> None:
    result = _run([_tool("cfn-lint"), str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes() -> None:
    result = _run([_tool("sam"), "validate", "--lint", "--template-file", str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- state machine


def _transitions(states: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name, state in states.items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [choice.get("Next") for choice in state.get("Choices", [])]
        targets += [catcher.get("Next") for catcher in state.get("Catch", [])]
        for target in targets:
            if target is not None:
                yield name, target


def test_rendered_state_machine_passes_statelint(definition: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "poller.json"
    path.write_text(json.dumps(definition))
    result = _run([_tool("statelint"), str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_statelint_catches_a_broken_definition(definition: dict[str, Any], tmp_path: Path) -> None:
    # Proves the check above can fail: a dangling transition and an integer BackoffRate.
    broken = copy.deepcopy(definition)
    broken["States"]["IsTerminal"]["Default"] = "NoSuchState"
    broken["States"]["CheckJob"]["Retry"][0]["BackoffRate"] = 2
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = _run([_tool("statelint"), str(path)])
    assert result.returncode != 0
    assert "NoSuchState" in result.stdout + result.stderr


def test_every_transition_targets_an_existing_state(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert definition["StartAt"] in states
    dangling = [(src, dst) for src, dst in _transitions(states) if dst not in states]
    assert not dangling, f"transitions to missing states: {dangling}"
    reachable, todo = set(), [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo += [dst for src, dst in _transitions(states) if src == name]
    assert reachable == set(states), f"unreachable states: {set(states) - reachable}"


def test_poller_loop_shape(definition: dict[str, Any]) -> None:
    states = definition["States"]
    assert definition["StartAt"] == "WaitForProvider"
    wait = states["WaitForProvider"]
    # The wait is a task token that a callback resumes, timing out after one poll interval into a
    # check (the backstop for a lost callback); any failure of the park step is a check as well.
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["TimeoutSecondsPath"] == "$.poll_interval_seconds"
    assert wait["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert wait["Parameters"]["Payload"]["action"] == "park"
    assert wait["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "CheckJob"}]
    assert wait["Next"] == "CheckJob"
    assert all(state["Resource"].startswith("arn:aws:states:::") for state in states.values() if "Resource" in state)
    check = states["CheckJob"]
    assert check["Parameters"]["FunctionName"] == DUMMY_SUBSTITUTIONS["FinalizeFunctionArn"]
    assert check["Parameters"]["Payload"] == {"job_id.$": "$.job_id", "source": "poller"}
    assert check["ResultPath"] == "$.check"
    assert check["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ExpireJob"}]
    assert states["ExpireJob"]["Parameters"]["Payload"]["action"] == "expire"
    assert states["ExpireJob"]["Next"] == "PollerFailed"
    assert states["PollerFailed"]["Type"] == "Fail"
    choice = states["IsTerminal"]
    assert choice["Choices"][0] == {"Variable": "$.check.terminal", "BooleanEquals": True, "Next": "Done"}
    assert choice["Default"] == "WaitForProvider"


def test_execution_timeout_is_a_number_beyond_the_job_deadline(
    template: dict[str, Any], definition: dict[str, Any]
) -> None:
    # The placeholder is unquoted in the ASL file, so CloudFormation's textual substitution
    # yields a JSON number (a quoted one would be a string and rejected by Step Functions).
    assert definition["TimeoutSeconds"] == 7200
    defaults = parameter_defaults(template)
    deadline, interval = int(defaults["JobDeadlineSeconds"]), int(defaults["PollIntervalSeconds"])
    assert int(defaults["ExecutionTimeoutSeconds"]) > deadline + interval
    substitutions = template["Resources"]["PollerStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["ExecutionTimeoutSeconds"] == {"Ref": "ExecutionTimeoutSeconds"}


# ---------------------------------------------------------------------------- template facts


def test_intake_visibility_timeout_covers_six_submit_timeouts(template: dict[str, Any]) -> None:
    visibility = template["Resources"]["IntakeQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * function_spec(template, "SubmitFunction")["timeout"]


def test_finalize_does_not_reference_the_state_machine(template: dict[str, Any]) -> None:
    # The state machine references FinalizeFunction; the reverse would be a circular dependency.
    assert "PollerStateMachine" not in json.dumps(template["Resources"]["FinalizeFunction"])
    assert "PollerStateMachine" not in json.dumps(template["Globals"])


def _layer_dir(template: dict[str, Any]) -> Path:
    return ROOT / template["Resources"]["SharedLayer"]["Properties"]["ContentUri"]


def test_layer_ships_the_package_at_the_top_of_the_python_path(template: dict[str, Any]) -> None:
    # `sam build` copies ContentUri's contents into the layer's python/ (= /opt/python), so the
    # package must sit directly in ContentUri: the same folder the tests put on PYTHONPATH.
    assert _layer_dir(template) == ROOT / "layers" / "clipedit" / "python"
    assert (_layer_dir(template) / "clipedit").is_dir()
    assert template["Resources"]["SharedLayer"]["Metadata"]["BuildMethod"] == "makefile"
    # The layer's Makefile puts the requirements and the package in python/ and ships bytecode.
    build = (_layer_dir(template) / "Makefile").read_text()
    assert "build-SharedLayer:" in build and "--invalidation-mode unchecked-hash" in build
    assert "-r requirements.txt" in build.replace("--requirement ", "-r ") and 'cp -R clipedit "$(TARGET)/"' in build


def test_media_layer_ships_bytecode_too(template: dict[str, Any]) -> None:
    # SAM's python3.12 builder ships no .pyc: PyAV's and clipedit_media's modules would be compiled
    # at every prepare cold start (the layer is read-only at run time).
    media = template["Resources"]["MediaLayer"]
    assert media["Metadata"]["BuildMethod"] == "makefile"
    layer_dir = ROOT / media["Properties"]["ContentUri"]
    assert (layer_dir / "clipedit_media").is_dir()
    build = (layer_dir / "Makefile").read_text()
    assert "build-MediaLayer:" in build and "--invalidation-mode unchecked-hash" in build
    assert "-r requirements.txt" in build.replace("--requirement ", "-r ")
    assert 'cp -R clipedit_media "$(TARGET)/"' in build


@pytest.mark.xfail(
    not (ROOT / "layers/clipedit/python/requirements.txt").exists(),
    reason="layers/clipedit/requirements.txt must move to layers/clipedit/python/requirements.txt "
    "(next to the package, inside the layer's ContentUri) for `sam build` to install the layer's "
    "dependencies; requirements-dev.in's -r line follows it",
)
def test_layer_requirements_are_inside_content_uri(template: dict[str, Any]) -> None:
    assert (_layer_dir(template) / "requirements.txt").is_file()


# ---------------------------------------------------------------------------- transformed template


def test_sqs_event_source_reports_partial_failures_and_caps_concurrency(cfn: dict[str, Any]) -> None:
    all_mappings = [m["Properties"] for m in _resources_of_type(cfn, "AWS::Lambda::EventSourceMapping").values()]
    by_queue = {m["EventSourceArn"]["Fn::GetAtt"][0]: m for m in all_mappings}
    assert {q: m["FunctionName"]["Ref"] for q, m in by_queue.items()} == {
        "IntakeQueue": "SubmitFunction", "WakeQueue": "SubmitFunction", "PrepareQueue": "PrepareFunction"}
    # Gate wake-ups have their own queue and event source: they never wait behind the upload backlog.
    wake = by_queue["WakeQueue"]
    assert wake["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and wake["ScalingConfig"]["MaximumConcurrency"] == 2
    mappings = {m["FunctionName"]["Ref"]: m for q, m in by_queue.items() if q != "WakeQueue"}
    properties = mappings["SubmitFunction"]
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "SubmitMaxConcurrency"}
    assert properties["BatchSize"] == 10
    prepare = mappings["PrepareFunction"]
    assert prepare["EventSourceArn"] == {"Fn::GetAtt": ["PrepareQueue", "Arn"]}
    assert prepare["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert prepare["BatchSize"] == 1  # one clip per invocation: a prepare uses the whole function


def test_only_the_prepare_function_loads_the_media_layer(cfn: dict[str, Any]) -> None:
    def layers(function: dict[str, Any]) -> list[str]:
        # The transform renames a layer to its logical id plus a content hash.
        return [ref["Ref"] for ref in function["Properties"].get("Layers", [])]

    functions = _resources_of_type(cfn, "AWS::Lambda::Function")
    with_media = sorted(name for name, f in functions.items() if any(l.startswith("MediaLayer") for l in layers(f)))
    assert with_media == ["PrepareFunction"]
    assert any(l.startswith("SharedLayer") for l in layers(functions["PrepareFunction"]))
    prepare = functions["PrepareFunction"]["Properties"]
    queue = cfn["Resources"]["PrepareQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * prepare["Timeout"]


def test_inbox_notifies_the_intake_queue_for_every_created_object(cfn: dict[str, Any]) -> None:
    inbox = cfn["Resources"]["InboxBucket"]
    configs = inbox["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    prefixes = []
    for queue_config in configs:
        assert queue_config["Event"] == "s3:ObjectCreated:*"
        assert queue_config["Queue"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
        (rule,) = queue_config["Filter"]["S3Key"]["Rules"]
        assert rule["Name"] == "prefix"
        prefixes.append(rule["Value"])
    # Clips, manifests and batches; never presets (they are read on demand) nor the whole bucket.
    assert prefixes == [{"Ref": "IncomingPrefix"}, {"Ref": "JobsPrefix"}, {"Ref": "BatchesPrefix"}]
    assert "IntakeQueuePolicy" in _as_list(inbox.get("DependsOn", []))


def test_queue_policy_trusts_only_the_inbox_bucket(cfn: dict[str, Any], template: dict[str, Any]) -> None:
    (statement,) = cfn["Resources"]["IntakeQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    source_arn = json.dumps(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert "clipedit-inbox-" in source_arn and "AWS::StackId" in source_arn
    # The bucket name is built the same way (no Ref to the bucket, which would be circular).
    bucket_name = json.dumps(template["Resources"]["InboxBucket"]["Properties"]["BucketName"])
    assert "clipedit-inbox" in bucket_name and "AWS::StackId" in bucket_name


def test_no_iam_statement_grants_wildcard_actions(cfn: dict[str, Any]) -> None:
    offenders = []
    for logical_id, statement in _statements(cfn):
        if statement.get("Effect") != "Allow":
            continue  # the TLS-only bucket policies deny s3:*, which is the point
        for action in _as_list(statement.get("Action", [])):
            if action == "*" or (isinstance(action, str) and action.endswith(":*")):
                offenders.append((logical_id, action))
    assert not offenders, f"wildcard actions: {offenders}"


def test_buckets_are_private_encrypted_versioned_and_tls_only(cfn: dict[str, Any]) -> None:
    buckets = _resources_of_type(cfn, "AWS::S3::Bucket")
    assert set(buckets) == {"InboxBucket", "OutputsBucket"}
    policies = _resources_of_type(cfn, "AWS::S3::BucketPolicy")
    for logical_id, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        for world in KMS_WORLDS:
            (rule,) = _choose(properties["BucketEncryption"], world)["ServerSideEncryptionConfiguration"]
            expected = "aws:kms" if world["UseKms"] else "AES256"
            assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == expected, (logical_id, world)
            if world["UseKms"]:
                assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Ref": "KmsKeyArn"}
        assert properties["VersioningConfiguration"]["Status"] == "Enabled"
        lifecycle = properties["LifecycleConfiguration"]["Rules"]
        assert any("AbortIncompleteMultipartUpload" in r for r in lifecycle), logical_id
        tls_denies = [
            statement
            for policy in policies.values()
            if policy["Properties"]["Bucket"] == {"Ref": logical_id}
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
            and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        ]
        assert tls_denies, f"{logical_id} has no TLS-only bucket policy"


def test_function_roles_are_least_privilege(cfn: dict[str, Any]) -> None:
    submit = _role_actions(cfn, "SubmitFunctionRole")
    finalize = _role_actions(cfn, "FinalizeFunctionRole")
    assert "states:StartExecution" in submit
    assert "states:StartExecution" not in finalize
    # Finalize may only resume the poller's wait (a callback), on this stack's state machine.
    assert {a for a in finalize if a.startswith("states:")} == {"states:SendTaskSuccess"}
    resume = [st for st in _role_statements(cfn, "FinalizeFunctionRole") if "states:SendTaskSuccess" in _as_list(st["Action"])]
    machine_name = cfn["Resources"]["PollerStateMachine"]["Properties"]["StateMachineName"]["Fn::Sub"]
    assert [st["Resource"]["Fn::Sub"] for st in resume] == [
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + machine_name]
    assert {"s3:PutObject", "s3:AbortMultipartUpload"} <= finalize
    assert not {a for a in submit if a.startswith("s3:Delete")}
    # Submit writes only batch results, next to the batch, never clips or outputs.
    for statement in _role_statements(cfn, "SubmitFunctionRole"):
        if any(a.startswith("s3:Put") for a in _as_list(statement["Action"])):
            assert "${BatchesPrefix}*" in json.dumps(statement["Resource"])
    assert not {a for a in submit | finalize if a.startswith("dynamodb:") and a.endswith(("Scan", "DeleteItem"))}
    machine = _role_actions(cfn, "PollerStateMachineRole")
    assert machine == {"lambda:InvokeFunction"}


def test_submit_environment_has_state_machine_and_callback_url(cfn: dict[str, Any]) -> None:
    variables = cfn["Resources"]["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["STATE_MACHINE_ARN"] == {"Ref": "PollerStateMachine"}
    assert "${CallbackApi}" in variables["CALLBACK_BASE_URL"]["Fn::Sub"]
    assert variables["JOBS_TABLE"] == {"Ref": "JobsTable"}
    finalize = cfn["Resources"]["FinalizeFunction"]["Properties"]["Environment"]["Variables"]
    assert "STATE_MACHINE_ARN" not in finalize and "CALLBACK_BASE_URL" not in finalize


def test_functions_share_the_globals(cfn: dict[str, Any]) -> None:
    expected = {
        "JOBS_TABLE", "INBOX_BUCKET", "OUTPUTS_BUCKET", "INCOMING_PREFIX", "OUTPUT_PREFIX",
        "EVENT_BUS_NAME", "PROVIDER_SECRET_ID", "KLING_API_BASE_URL", "DEFAULT_MODEL", "DEFAULT_MODE",
        "DEFAULT_PROVIDER", "FAL_QUEUE_BASE_URL", "FAL_JWKS_URL",
        "POLL_INTERVAL_SECONDS", "JOB_DEADLINE_SECONDS", "PRESIGN_TTL_SECONDS",
        "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE",
    }  # fmt: skip
    for function_id in ("SubmitFunction", "FinalizeFunction"):
        properties = cfn["Resources"][function_id]["Properties"]
        assert expected <= set(properties["Environment"]["Variables"]), function_id
        assert properties["Runtime"] == "python3.12"
        assert properties["Architectures"] == ["arm64"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert len(properties["Layers"]) == 1


def test_callback_route_and_throttling(cfn: dict[str, Any]) -> None:
    api = cfn["Resources"]["CallbackApi"]["Properties"]["Body"]
    assert "post" in api["paths"]["/callbacks/{provider}/{job_id}"]
    stage = cfn["Resources"]["CallbackApiApiGatewayDefaultStage"]
    throttling = stage["Properties"]["DefaultRouteSettings"]
    assert throttling["ThrottlingBurstLimit"] > 0 and throttling["ThrottlingRateLimit"] > 0


def test_outputs_are_complete(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= {
        "InboxBucketName", "OutputsBucketName", "JobsTableName", "StateMachineArn", "CallbackApiUrl",
        "ProviderSecretArn", "IntakeQueueUrl", "DeadLetterQueueUrl", "EventBusName",
        "SubmitFunctionName", "FinalizeFunctionName",
    }  # fmt: skip


def test_queues_and_table_are_encrypted_and_recoverable(cfn: dict[str, Any]) -> None:
    queues = {k: r for k, r in cfn["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    assert queues, "no queue found"
    for logical_id, queue in queues.items():
        for world in KMS_WORLDS:
            properties = _choose(queue.get("Properties", {}), world)
            if world["UseKms"]:
                assert properties["KmsMasterKeyId"] == {"Ref": "KmsKeyArn"}, logical_id
            else:
                assert properties.get("SqsManagedSseEnabled") is True, logical_id
    tables = {k: r for k, r in cfn["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert tables, "no table found"
    for logical_id, table in tables.items():
        properties = table["Properties"]
        for world in KMS_WORLDS:
            sse = _choose(properties.get("SSESpecification", {}), world)
            # DynamoDB always encrypts at rest: SSEEnabled false is the AWS-owned key (the README's
            # promise without KmsKeyArn); true without a key would be the AWS-managed aws/dynamodb key.
            assert sse.get("SSEEnabled") is world["UseKms"], logical_id
            if world["UseKms"]:
                assert (sse["SSEType"], sse["KMSMasterKeyId"]) == ("KMS", {"Ref": "KmsKeyArn"})
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, logical_id


def test_no_inline_allow_statement_targets_every_resource(cfn: dict[str, Any]) -> None:
    # Resource "*" is only acceptable where AWS requires it; our inline policies need none (the
    # X-Ray write policy SAM attaches for Tracing is AWS's managed policy, not ours).
    offenders = [
        (logical_id, statement.get("Sid"))
        for logical_id, statement in _statements(cfn)
        if statement.get("Effect") == "Allow" and "*" in _as_list(statement.get("Resource", []))
    ]
    assert offenders == []


def test_input_and_output_expiry_are_opt_in(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["InputExpirationDays"]["Default"] == 0 and parameters["OutputExpirationDays"]["Default"] == 0
    for bucket, condition in (("InboxBucket", "ExpireInputs"), ("OutputsBucket", "ExpireOutputs")):
        rules = template["Resources"][bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
        conditional = [r for r in rules if "Fn::If" in r]
        assert len(conditional) == 1 and conditional[0]["Fn::If"][0] == condition
        assert conditional[0]["Fn::If"][2] == {"Ref": "AWS::NoValue"}  # no expiry unless asked for
    assert template["Conditions"]["ExpireInputs"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "InputExpirationDays"}, 0]}]}


def test_functions_may_use_the_customer_key_only_when_one_is_given(cfn: dict[str, Any]) -> None:
    for role in ("SubmitFunctionRole", "FinalizeFunctionRole"):
        for world in KMS_WORLDS:
            statements = [
                st for policy in cfn["Resources"][role]["Properties"]["Policies"]
                for st in _as_list(_choose(policy["PolicyDocument"], world)["Statement"])
            ]
            kms = [st for st in statements if any(str(a).startswith("kms:") for a in _as_list(st.get("Action", [])))]
            if world["UseKms"]:
                assert len(kms) == 1 and kms[0]["Resource"] == {"Ref": "KmsKeyArn"}, role
            else:
                assert kms == [], role


def test_the_last_receive_that_records_a_dead_letter_reason_matches_the_redrive_policy(template) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    redrive = template["Resources"]["IntakeQueue"]["Properties"]["RedrivePolicy"]
    assert int(env["MAX_RECEIVE_COUNT"]) == int(redrive["maxReceiveCount"])


def test_the_concurrency_gate_is_a_parameter_every_function_sees(template) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["PROVIDER_CONCURRENCY_LIMIT"] == {"Ref": "ProviderConcurrencyLimit"}
    assert template["Parameters"]["ProviderConcurrencyLimit"]["MinValue"] == 1
    # Both functions end jobs, so both free slots and wake the oldest waiting job.
    for function in ("SubmitFunction", "FinalizeFunction"):
        statements = template["Resources"][function]["Properties"]["Policies"][0]["Statement"]
        queries = [s for s in statements if s.get("Action") == "dynamodb:Query"]
        assert any("index/by-status" in json.dumps(s["Resource"]) for s in queries), function
        sends = [s for s in statements if "sqs:SendMessage" in _as_list(s.get("Action"))]
        assert sends, function


# ---------------------------------------------------------------------------- status API and monitoring


STATUS_ROUTES = {("/jobs", "get"), ("/jobs", "post"), ("/jobs/{job_id}", "get"), ("/batches/{batch_id}", "get"),
                 ("/jobs/{job_id}/review", "post")}


def test_every_status_route_needs_iam_and_callbacks_stay_open(cfn: dict[str, Any]) -> None:
    paths = cfn["Resources"]["StatusApi"]["Properties"]["Body"]["paths"]
    routes = {(path, method) for path, methods in paths.items() for method in methods}
    assert routes == STATUS_ROUTES
    for path, method in routes:
        assert paths[path][method]["security"] == [{"AWS_IAM": []}], (path, method)
    callback = cfn["Resources"]["CallbackApi"]["Properties"]["Body"]["paths"]["/callbacks/{provider}/{job_id}"]["post"]
    assert "security" not in callback  # the provider cannot sign: the per-job token guards it


def test_status_function_lists_through_indexes_only(cfn: dict[str, Any]) -> None:
    statements = _role_statements(cfn, "StatusApiFunctionRole")
    actions = _role_actions(cfn, "StatusApiFunctionRole")
    assert not {a for a in actions if a.endswith(("Scan", "DeleteItem", "PutItem"))}
    # The only update is a review's (POST /jobs/{id}/review), on the table itself.
    (update,) = [st for st in statements if "dynamodb:UpdateItem" in _as_list(st["Action"])]
    assert _as_list(update["Action"]) == ["dynamodb:UpdateItem"] and "/index/" not in json.dumps(update["Resource"])
    (query,) = [st for st in statements if "dynamodb:Query" in _as_list(st["Action"])]
    assert all("/index/" in json.dumps(r) for r in _as_list(query["Resource"]))
    (put,) = [st for st in statements if "s3:PutObject" in _as_list(st["Action"])]
    assert "${JobsPrefix}api/*" in json.dumps(put["Resource"])  # only where submitted manifests go


def test_alarms_cover_the_failure_modes_and_email_is_optional(cfn: dict[str, Any], template: dict[str, Any]) -> None:
    alarms = _resources_of_type(cfn, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {"DeadLetterQueueAlarm", "JobFailureRateAlarm", "JobsTimedOutAlarm", "IntakeBacklogAlarm",
                           "PollerFailuresAlarm", "ProviderBalanceAlarm", "FunctionErrorsAlarm"}
    for logical_id, alarm in alarms.items():
        assert alarm["Condition"] == "CreateMonitoring", logical_id
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", logical_id  # idle is not an alarm
        for world in ({"NotifyByEmail": False}, {"NotifyByEmail": True}):
            actions = _choose(alarm["Properties"], world).get("AlarmActions")
            assert actions == ([{"Ref": "AlarmTopic"}] if world["NotifyByEmail"] else None), logical_id
    assert cfn["Resources"]["AlarmTopic"]["Condition"] == "NotifyByEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    # The dashboard shows every alarm.
    body = json.dumps(cfn["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    assert all(f"${{{name}.Arn}}" in body for name in alarms)


def test_metrics_namespace_is_per_stack_and_alarms_read_it(cfn: dict[str, Any]) -> None:
    namespace = {"Fn::Sub": "clipedit/${AWS::StackName}"}
    for function_id in ("SubmitFunction", "FinalizeFunction", "StatusApiFunction"):
        variables = cfn["Resources"][function_id]["Properties"]["Environment"]["Variables"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == namespace, function_id
    balance = cfn["Resources"]["ProviderBalanceAlarm"]["Properties"]["Metrics"]
    codes = {d["Value"] for m in balance if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]
             if d["Name"] == "code"}
    assert codes == {"KLING_1100", "KLING_1101", "KLING_1102"}
    assert all(m["MetricStat"]["Metric"]["Namespace"] == namespace for m in balance if "MetricStat" in m)


def test_layer_ships_the_tracer_dependency() -> None:
    requirements = (ROOT / "layers/clipedit/python/requirements.txt").read_text()
    assert "aws-xray-sdk==" in requirements  # Powertools Tracer needs it at import
