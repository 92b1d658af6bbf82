"""local.template: reading template.yaml without the SAM transform."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from local.template import ROOT, function_spec, load_template, parameter_defaults, render_state_machine

ARN = "arn:aws:lambda:us-east-1:123456789012:function:clipedit-FinalizeFunction-EXAMPLE"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


# ---------------------------------------------------------------------------- load_template


def test_short_tags_become_long_forms(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "t.yaml",
        """\
        Conditions:
          IsProd: !Equals [!Ref Env, prod]
          NotProd: !Not [!Condition IsProd]
          Both: !And [!Condition IsProd, !Or [!Condition IsProd, !Condition NotProd]]
        Resources:
          R:
            Type: AWS::X::Y
            Properties:
              Ref: !Ref Thing
              SubScalar: !Sub "arn:${AWS::Partition}:s3:::${Bucket}"
              SubList: !Sub ["${A}-x", {A: !Ref B}]
              GetAttDotted: !GetAtt Fn.Arn
              GetAttNested: !GetAtt Db.Endpoint.Address
              GetAttList: [!GetAtt [Fn, Arn]]
              Join: !Join ["-", [a, !Select [2, !Split ["/", !Ref "AWS::StackId"]]]]
              If: !If [IsProd, 1, !Ref "AWS::NoValue"]
              Map: !FindInMap [M, k1, k2]
              B64: !Base64 hello
              Import: !ImportValue other-stack-Output
              Azs: !GetAZs ""
              Cidr: !Cidr ["10.0.0.0/16", 4, 8]
        """,
    )
    loaded = load_template(path)
    conditions = loaded["Conditions"]
    assert conditions["IsProd"] == {"Fn::Equals": [{"Ref": "Env"}, "prod"]}
    assert conditions["NotProd"] == {"Fn::Not": [{"Condition": "IsProd"}]}
    assert conditions["Both"] == {
        "Fn::And": [{"Condition": "IsProd"}, {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "NotProd"}]}]
    }
    p = loaded["Resources"]["R"]["Properties"]
    assert p["Ref"] == {"Ref": "Thing"}
    assert p["SubScalar"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}"}
    assert p["SubList"] == {"Fn::Sub": ["${A}-x", {"A": {"Ref": "B"}}]}
    assert p["GetAttDotted"] == {"Fn::GetAtt": ["Fn", "Arn"]}
    assert p["GetAttNested"] == {"Fn::GetAtt": ["Db", "Endpoint.Address"]}
    assert p["GetAttList"] == [{"Fn::GetAtt": ["Fn", "Arn"]}]
    assert p["Join"] == {
        "Fn::Join": ["-", ["a", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]]
    }
    assert p["If"] == {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]}
    assert p["Map"] == {"Fn::FindInMap": ["M", "k1", "k2"]}
    assert p["B64"] == {"Fn::Base64": "hello"}
    assert p["Import"] == {"Fn::ImportValue": "other-stack-Output"}
    assert p["Azs"] == {"Fn::GetAZs": ""}
    assert p["Cidr"] == {"Fn::Cidr": ["10.0.0.0/16", 4, 8]}


def test_load_template_is_still_safe(tmp_path: Path) -> None:
    path = _write(tmp_path, "evil.yaml", "Resources: !!python/object/apply:os.system [echo pwned]\n")
    with pytest.raises(Exception, match="python/object"):
        load_template(path)


def test_load_template_rejects_a_non_template(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no Resources"):
        load_template(_write(tmp_path, "x.yaml", "just: data\n"))


def test_real_template_loads_with_expected_resources(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert {
        "SharedLayer", "InboxBucket", "OutputsBucket", "IntakeQueue", "IntakeDeadLetterQueue",
        "IntakeQueuePolicy", "JobsTable", "JobEventsBus", "ProviderSecret", "CallbackApi",
        "SubmitFunction", "FinalizeFunction", "PollerStateMachine",
    } <= set(template["Resources"])  # fmt: skip
    assert template["Resources"]["InboxBucket"]["Properties"]["BucketName"]["Fn::Join"][1][0] == "clipedit-inbox"


# ---------------------------------------------------------------------------- render_state_machine


def test_render_real_state_machine(template: dict[str, Any]) -> None:
    text = render_state_machine(template, {"FinalizeFunctionArn": ARN, "ExecutionTimeoutSeconds": "900",
                                           "Partition": "aws"})
    definition = json.loads(text)
    assert "${" not in text
    assert definition["TimeoutSeconds"] == 900  # unquoted placeholder -> a JSON number
    assert definition["States"]["CheckJob"]["Parameters"]["FunctionName"] == ARN
    assert definition["States"]["ExpireJob"]["Parameters"]["FunctionName"] == ARN


def test_render_names_every_unresolved_placeholder(template: dict[str, Any]) -> None:
    with pytest.raises(KeyError) as excinfo:
        render_state_machine(template, {})
    message = str(excinfo.value)
    assert "FinalizeFunctionArn" in message and "ExecutionTimeoutSeconds" in message


def test_render_reports_the_one_missing_placeholder(template: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="ExecutionTimeoutSeconds") as excinfo:
        render_state_machine(template, {"FinalizeFunctionArn": ARN, "Partition": "aws"})
    assert "FinalizeFunctionArn" not in str(excinfo.value)


def test_render_rejects_invalid_json_after_substitution(tmp_path: Path) -> None:
    asl = _write(tmp_path, "m.asl.json", '{"StartAt": "A", "TimeoutSeconds": ${T}, "States": {}}')
    fake = {"Resources": {"PollerStateMachine": {"Properties": {"DefinitionUri": str(asl)}}}}
    assert json.loads(render_state_machine(fake, {"T": "60"}))["TimeoutSeconds"] == 60
    with pytest.raises(ValueError, match="not valid JSON"):
        render_state_machine(fake, {"T": "sixty"})


def test_render_reads_the_definition_relative_to_the_project_root(template: dict[str, Any]) -> None:
    uri = template["Resources"]["PollerStateMachine"]["Properties"]["DefinitionUri"]
    assert not Path(uri).is_absolute()
    assert (ROOT / uri).is_file()


# ---------------------------------------------------------------------------- function_spec


def test_function_spec_merges_globals(template: dict[str, Any]) -> None:
    submit = function_spec(template, "SubmitFunction")
    assert submit["code_uri"] == "functions/submit"
    assert submit["handler"] == "app.lambda_handler"
    assert (submit["timeout"], submit["memory"]) == (180, 512)
    env = submit["environment"]
    assert env["JOBS_TABLE"] == {"Ref": "JobsTable"}  # from Globals, still in CFN form
    assert env["POWERTOOLS_SERVICE_NAME"] == "clipedit"
    assert env["STATE_MACHINE_ARN"] == {"Ref": "PollerStateMachine"}  # the function's own
    assert "${CallbackApi}" in env["CALLBACK_BASE_URL"]["Fn::Sub"]

    finalize = function_spec(template, "FinalizeFunction")
    assert (finalize["code_uri"], finalize["timeout"]) == ("functions/finalize", 300)
    assert "STATE_MACHINE_ARN" not in finalize["environment"]
    assert finalize["environment"]["EVENT_BUS_NAME"] == {"Ref": "JobEventsBus"}


def test_function_spec_lets_the_function_override_globals() -> None:
    fake = {
        "Globals": {"Function": {"Timeout": 10, "Handler": "g.h", "Environment": {"Variables": {"A": "g", "B": "g"}}}},
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "f", "Timeout": 20, "Environment": {"Variables": {"B": "f"}}},
            }
        },
    }
    spec = function_spec(fake, "F")
    assert spec == {"code_uri": "f", "handler": "g.h", "timeout": 20, "memory": 128, "environment": {"A": "g", "B": "f"}}


def test_function_spec_rejects_unknown_or_non_function(template: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="NoSuchFunction"):
        function_spec(template, "NoSuchFunction")
    with pytest.raises(ValueError, match="JobsTable"):
        function_spec(template, "JobsTable")


# ---------------------------------------------------------------------------- parameter_defaults


def test_parameter_defaults_are_strings(template: dict[str, Any]) -> None:
    defaults = parameter_defaults(template)
    assert defaults["KlingApiBaseUrl"] == "https://api-singapore.klingai.com"
    assert defaults["DefaultModel"] == "o3"
    assert defaults["DefaultMode"] == "pro"
    assert defaults["PollIntervalSeconds"] == "300"
    assert defaults["JobDeadlineSeconds"] == "3600"
    assert defaults["ExecutionTimeoutSeconds"] == "7200"
    assert defaults["SubmitMaxConcurrency"] == "5"
    assert defaults["PresignTtlSeconds"] == "3600"
    assert defaults["IncomingPrefix"] == "incoming/"
    assert defaults["OutputPrefix"] == "edited/"
    assert defaults["LogLevel"] == "INFO"
    assert all(isinstance(value, str) for value in defaults.values())


def test_parameter_defaults_skip_parameters_without_one() -> None:
    fake = {"Parameters": {"A": {"Type": "String"}, "B": {"Type": "CommaDelimitedList", "Default": ["x", "y"]}}}
    assert parameter_defaults(fake) == {"B": "x,y"}
