"""The embedded local stack: the whole pipeline on one machine, no AWS account, no provider key.

- moto in server mode holds the resources named in template.yaml (buckets with the S3->SQS
  notification, queues with the DLQ redrive, the jobs table with its indexes, the event bus, the
  secret, the two functions and the real state machine definition, executed);
- the real handlers run in this process (see ``local.runtime``);
- ``local.sqs_dispatch`` plays Lambda's SQS event source mapping, ``local.gateway`` plays the HTTP
  API for provider callbacks;
- ``local.kling_emulator`` plays Kling's API and renders a real edited video; ``local.fal_emulator``
  plays fal's queue API (same edit), with signed webhooks and a local JWKS. Both run, so each job
  may name either provider.

Start it with ``make local`` (or ``python -m local.stack``); it writes ``.clipedit/local.json`` so
any boto3 client (fake credentials) can upload clips and read results.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.template import ROOT, load_template, parameter_defaults, render_state_machine

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
LOCAL_ACCESS_KEY = "local-access-key-0123456789abcdef"
LOCAL_SECRET_KEY = "local-secret-key-0123456789abcdef0123"
LOCAL_FAL_KEY = "local-fal-key-id:local-fal-key-secret-0123456789abcdef"
LOCAL_FAL_USER_ID = "local-fal-user"


def _env_float(name: str, default: float, environ: dict[str, str]) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


@dataclass
class LocalOptions:
    state_dir: Path = ROOT / ".clipedit"
    name: str = "local"
    poll_interval_seconds: int = 2
    job_deadline_seconds: int = 600
    visibility_timeout_seconds: int = 30
    submit_max_concurrency: int | None = None
    default_provider: str = "kling"
    emulator_overrides: dict[str, str] = field(default_factory=dict)
    # Template parameters to override (e.g. ProviderConcurrencyLimit) and extra function
    # environment (e.g. FINALIZE_LEASE_SECONDS, RETRY_BASE_SECONDS) for fault and load runs.
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    function_environment: dict[str, str] = field(default_factory=dict)
    finalize_crash_rate: float = 0.0  # share of result copies whose finalize process "dies" mid-copy
    crash_seed: int = 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> "LocalOptions":
        env = dict(os.environ if environ is None else environ)
        options = cls(
            poll_interval_seconds=int(_env_float("CLIPEDIT_POLL_INTERVAL_SECONDS", 2, env)),
            job_deadline_seconds=int(_env_float("CLIPEDIT_JOB_DEADLINE_SECONDS", 600, env)),
            visibility_timeout_seconds=int(_env_float("CLIPEDIT_LOCAL_VISIBILITY_TIMEOUT_SECONDS", 30, env)),
            finalize_crash_rate=_env_float("CLIPEDIT_LOCAL_FINALIZE_CRASH_RATE", 0.0, env),
            default_provider=env.get("CLIPEDIT_DEFAULT_PROVIDER", "").strip() or "kling",
        )
        if not 0.0 <= options.finalize_crash_rate <= 1.0:
            raise ValueError(f"CLIPEDIT_LOCAL_FINALIZE_CRASH_RATE must be between 0 and 1, got {options.finalize_crash_rate}")
        for key, value in overrides.items():
            setattr(options, key, value)
        return options


def _resolve(value: Any, refs: dict[str, str], attrs: dict[tuple[str, str], str]) -> str:
    """Just enough of CloudFormation's intrinsics for the template's environment values."""
    if isinstance(value, (str, int, float)):
        return str(value)
    if "Ref" in value:
        return refs[value["Ref"]]
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return attrs[(resource, attribute)]
    if "Fn::Sub" in value:
        text, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _resolve(variables[name], refs, attrs)
            if "." in name:
                resource, attribute = name.split(".", 1)
                return attrs[(resource, attribute)]
            return refs[name]

        return re.sub(r"\$\{([^}!]+)\}", substitute, text)
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        if isinstance(parts, dict):  # e.g. !Join [",", !Ref SomeCommaDelimitedList]
            return _resolve(parts, refs, attrs)
        return separator.join(_resolve(p, refs, attrs) for p in parts)
    raise ValueError(f"cannot resolve {value!r} locally")


_RUNNING: list["LocalStack"] = []  # stacks started in this process and not stopped, oldest first


class LocalStack:
    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions.from_env()
        self.template = load_template()
        # Checked before anything starts: a misspelt override would otherwise be silently ignored.
        unknown = set(self.options.parameter_overrides) - set(self.template.get("Parameters", {}))
        if unknown:
            raise ValueError(f"not template parameters: {', '.join(sorted(unknown))}")
        self.info: dict[str, Any] = {}
        self._stoppers: list[Any] = []

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        saved_environment = dict(os.environ)
        self._stoppers.append(lambda: self._restore_environment(saved_environment))
        self._start_moto()
        self._start_emulator()
        self._start_runtime()
        self._create_resources()
        self._start_dispatcher()
        self._write_info()
        # The environment this stack runs in (its moto port and endpoint, its functions' variables):
        # restored when a stack started after it stops first (tests nest a module's stack in the session's).
        self._environment = dict(os.environ)
        _RUNNING.append(self)
        return self.info

    def _restore_environment(self, saved: dict[str, str]) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        # A stack still running in this process keeps its own environment: moto's Step Functions
        # reach Lambda through MOTO_PORT, which must name a live server.
        target = _RUNNING[-1]._environment if _RUNNING else saved
        os.environ.clear()
        os.environ.update(target)

    def stop(self) -> None:
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:  # keep stopping the rest
                pass
        info_file = self.options.state_dir / "local.json"
        if info_file.exists() and json.loads(info_file.read_text()).get("pid") == os.getpid():
            info_file.unlink()

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.info["endpoint_url"])

    # --- pieces ---------------------------------------------------------------------------------

    def _start_moto(self) -> None:
        import logging

        from local.moto_server import KeepAliveMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise here

        # Fake credentials and region before any boto3 client exists; every client in this process
        # (the handlers' included) talks to moto through AWS_ENDPOINT_URL.
        os.environ.update({
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        })
        server = KeepAliveMotoServer("127.0.0.1", port=0)
        server.start()
        self._stoppers.append(server.stop)
        # This process's clients (the handlers', moto's own Step Functions->Lambda client, the tests')
        # hand their requests to moto's app directly: the socket round trip and a server thread per
        # connection cost about a third of a loaded stack's CPU (bench/throughput.py, two windows:
        # 195 -> 126 and 217 -> 147 CPU-ms per job). Other processes and plain HTTP clients
        # (presigned URLs, the emulators) use the port.
        self._stoppers.append(server.answer_in_process())
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ["MOTO_PORT"] = str(port)  # moto's Step Functions calls Lambda through this port
        import httpx

        from clipedit.adapters.tls import shared_ssl_context

        httpx.post(f"{endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}},
                   verify=shared_ssl_context()).raise_for_status()
        self.info.update(endpoint_url=endpoint, region=REGION)

    def _start_emulator(self) -> None:
        from local.kling_emulator import EmulatorSettings, KlingEmulator

        environ = dict(os.environ, **self.options.emulator_overrides)
        self.emulator = KlingEmulator(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, EmulatorSettings.from_env(environ))
        self.emulator.start()
        self._stoppers.append(self.emulator.stop)
        self.info["provider_url"] = self.emulator.base_url
        from local.fal_emulator import FalEmulator

        self.fal_emulator = FalEmulator(LOCAL_FAL_KEY, LOCAL_FAL_USER_ID, EmulatorSettings.from_env(environ))
        self.fal_emulator.start()
        self._stoppers.append(self.fal_emulator.stop)
        self.info.update(fal_url=self.fal_emulator.base_url, fal_jwks_url=self.fal_emulator.jwks_url)

    def _start_runtime(self) -> None:
        from local.gateway import CallbackGateway
        from local.moto_dynamodb_transactions import patch_moto_single_item_transactions, patch_moto_transaction_tokens
        from local.moto_dynamodb_json import patch_moto_dynamodb_json
        from local.runtime import (
            FunctionRunner,
            function_definition,
            patch_moto_dynamodb_atomic,
            patch_moto_dynamodb_index_query,
            patch_moto_jsonpath_cache,
            patch_moto_asl_parse_cache,
            patch_moto_backend_lookup,
            patch_moto_lambda,
            patch_moto_s3_events,
            patch_moto_server_module_list,
            patch_moto_sfn_lambda_client,
            patch_moto_sqs_backlog,
            patch_moto_task_token_wait,
        )

        prefix = f"clipedit-{self.options.name}"
        self.submit_function = f"{prefix}-submit"
        self.finalize_function = f"{prefix}-finalize"
        self.status_function = f"{prefix}-status-api"
        self.prepare_function = f"{prefix}-prepare"
        # Layers are on the path as /opt/python is in Lambda (the media layer: PyAV, for prepare).
        for layer in ("layers/clipedit/python", "layers/media/python"):
            if str(ROOT / layer) not in sys.path:
                sys.path.append(str(ROOT / layer))
        self.runner = FunctionRunner()
        for logical_id, name in self._functions():
            definition = function_definition(self.template, logical_id, name)
            definition.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            self.runner.register(definition)
        if self.options.finalize_crash_rate:
            from local.runtime import CrashingFetcher

            def install_crashes(module: Any) -> None:
                container = module.container
                container.__dict__["fetcher"] = CrashingFetcher(
                    container.fetcher, self.options.finalize_crash_rate, self.options.crash_seed)

            self.runner.on_load[self.finalize_function] = install_crashes
        self._stoppers.append(patch_moto_lambda(self.runner))
        self._stoppers.append(patch_moto_s3_events())
        self._stoppers.append(patch_moto_dynamodb_atomic())
        self._stoppers.append(patch_moto_task_token_wait())
        # moto's per-call cost grew with the backlog (queues, table): see each patch's docstring
        self._stoppers.append(patch_moto_sqs_backlog())
        self._stoppers.append(patch_moto_dynamodb_index_query())
        self._stoppers.append(patch_moto_jsonpath_cache())
        self._stoppers.append(patch_moto_asl_parse_cache())
        self._stoppers.append(patch_moto_backend_lookup())
        self._stoppers.append(patch_moto_server_module_list())
        self._stoppers.append(patch_moto_sfn_lambda_client())
        self._stoppers.append(patch_moto_dynamodb_json())  # see local/moto_dynamodb_json.py
        self._stoppers.append(patch_moto_transaction_tokens())  # see local/moto_dynamodb_transactions.py
        self._stoppers.append(patch_moto_single_item_transactions())
        self.gateway = CallbackGateway(lambda event: self.runner.invoke(self.finalize_function, event))
        self.gateway.start()
        self._stoppers.append(self.gateway.stop)
        self.info["callback_base_url"] = self.gateway.base_url
        # The status API, IAM-authorised as deployed: only requests signed with the local stack's
        # fake credentials (access key "testing", secret "testing") reach the function.
        from local.status_gateway import StatusApiGateway

        self.status_gateway = StatusApiGateway(lambda event: self.runner.invoke(self.status_function, event),
                                               secrets={"testing": "testing"}, region=REGION)
        self.status_gateway.start()
        self._stoppers.append(self.status_gateway.stop)
        self.info["status_api_url"] = self.status_gateway.base_url

    def _functions(self) -> tuple[tuple[str, str], ...]:
        return (("SubmitFunction", self.submit_function), ("FinalizeFunction", self.finalize_function),
                ("StatusApiFunction", self.status_function), ("PrepareFunction", self.prepare_function))

    def _create_resources(self) -> None:
        t = self.template["Resources"]
        prefix = f"clipedit-{self.options.name}"
        params = parameter_defaults(self.template)
        params.update(
            KlingApiBaseUrl=self.info["provider_url"],
            FalQueueBaseUrl=self.info["fal_url"],
            FalJwksUrl=self.info["fal_jwks_url"],
            DefaultProvider=self.options.default_provider,
            PollIntervalSeconds=str(self.options.poll_interval_seconds),
            JobDeadlineSeconds=str(self.options.job_deadline_seconds),
        )
        if self.options.submit_max_concurrency:
            params["SubmitMaxConcurrency"] = str(self.options.submit_max_concurrency)
        params.update(self.options.parameter_overrides)
        names = {
            "InboxBucket": f"{prefix}-inbox", "OutputsBucket": f"{prefix}-outputs",
            "JobsTable": f"{prefix}-jobs", "JobEventsBus": f"{prefix}-events",
            "IntakeQueue": f"{prefix}-intake", "IntakeDeadLetterQueue": f"{prefix}-intake-dlq",
            "PrepareQueue": f"{prefix}-prepare", "PrepareDeadLetterQueue": f"{prefix}-prepare-dlq",
            "WakeQueue": f"{prefix}-wake",
        }
        s3, sqs, ddb = self.client("s3"), self.client("sqs"), self.client("dynamodb")

        # Queues: the DLQ first, then the intake queue with the template's redrive policy.
        dlq_url = sqs.create_queue(QueueName=names["IntakeDeadLetterQueue"])["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = t["IntakeQueue"]["Properties"]["RedrivePolicy"]
        queue_url = sqs.create_queue(
            QueueName=names["IntakeQueue"],
            Attributes={
                # The template's timeout suits Lambda (6x the function timeout); locally a failed
                # message should come back within seconds.
                "VisibilityTimeout": str(self.options.visibility_timeout_seconds),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                             "maxReceiveCount": int(redrive["maxReceiveCount"])}),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        wake_redrive = t["WakeQueue"]["Properties"]["RedrivePolicy"]
        wake_queue_url = sqs.create_queue(QueueName=names["WakeQueue"], Attributes={
            "VisibilityTimeout": str(self.options.visibility_timeout_seconds),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": int(wake_redrive["maxReceiveCount"])}),
        })["QueueUrl"]
        wake_queue_arn = sqs.get_queue_attributes(QueueUrl=wake_queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        prepare_dlq_url = sqs.create_queue(QueueName=names["PrepareDeadLetterQueue"])["QueueUrl"]
        prepare_dlq_arn = sqs.get_queue_attributes(QueueUrl=prepare_dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        prepare_redrive = t["PrepareQueue"]["Properties"]["RedrivePolicy"]
        prepare_queue_url = sqs.create_queue(QueueName=names["PrepareQueue"], Attributes={
            # A prepare takes seconds here; a crashed one should come back soon, not after 90 min.
            "VisibilityTimeout": str(max(self.options.visibility_timeout_seconds, 120)),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": prepare_dlq_arn,
                                         "maxReceiveCount": int(prepare_redrive["maxReceiveCount"])}),
        })["QueueUrl"]
        prepare_queue_arn = sqs.get_queue_attributes(QueueUrl=prepare_queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

        # Buckets, versioned and private, the inbox notifying the intake queue as the template says.
        for logical_id in ("InboxBucket", "OutputsBucket"):
            bucket = names[logical_id]
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        refs = dict(params, **names, **{"AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                                        "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": prefix})
        queue_configs = []
        for config in t["InboxBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]:
            rules = config.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            queue_configs.append({
                "QueueArn": queue_arn,
                "Events": [config["Event"]],
                "Filter": {"Key": {"FilterRules": [
                    {"Name": r["Name"].lower(), "Value": _resolve(r["Value"], refs, {})} for r in rules]}},
            })
        s3.put_bucket_notification_configuration(
            Bucket=names["InboxBucket"], NotificationConfiguration={"QueueConfigurations": queue_configs})

        # The jobs table exactly as declared (keys and indexes).
        table = t["JobsTable"]["Properties"]
        table_args: dict[str, Any] = {
            "TableName": names["JobsTable"], "AttributeDefinitions": table["AttributeDefinitions"],
            "KeySchema": table["KeySchema"], "BillingMode": table.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if table.get("GlobalSecondaryIndexes"):
            table_args["GlobalSecondaryIndexes"] = table["GlobalSecondaryIndexes"]
        ddb.create_table(**table_args)

        # Event bus, plus a local-only queue that receives every job event (tests and the demo
        # wait on it instead of polling the table).
        events = self.client("events")
        events.create_event_bus(Name=names["JobEventsBus"])
        events_queue_url = sqs.create_queue(QueueName=f"{prefix}-job-events")["QueueUrl"]
        events_queue_arn = sqs.get_queue_attributes(QueueUrl=events_queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=f"{prefix}-all-job-events", EventBusName=names["JobEventsBus"],
                        EventPattern=json.dumps({"source": ["clipedit.jobs"]}))
        events.put_targets(Rule=f"{prefix}-all-job-events", EventBusName=names["JobEventsBus"],
                           Targets=[{"Id": "local-events-queue", "Arn": events_queue_arn}])

        secret_arn = self.client("secretsmanager").create_secret(
            Name=f"{prefix}/provider",
            SecretString=json.dumps({"access_key": LOCAL_ACCESS_KEY, "secret_key": LOCAL_SECRET_KEY,
                                     "fal_key": LOCAL_FAL_KEY, "fal_user_id": LOCAL_FAL_USER_ID}),
        )["ARN"]
        role_arn = self.client("iam").create_role(
            RoleName=f"{prefix}-lambda",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        )["Role"]["Arn"]

        state_machine_name = f"{prefix}-poller"
        state_machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{state_machine_name}"
        refs.update(ProviderSecret=secret_arn, PollerStateMachine=state_machine_arn, CallbackApi="local",
                    IntakeQueue=queue_url, IntakeDeadLetterQueue=dlq_url,  # Ref of a queue is its URL
                    PrepareQueue=prepare_queue_url, PrepareDeadLetterQueue=prepare_dlq_url, WakeQueue=wake_queue_url)
        attrs = {("SubmitFunction", "Arn"): self.runner_arn(self.submit_function),
                 ("FinalizeFunction", "Arn"): self.runner_arn(self.finalize_function)}

        # Functions: registered with moto (so Step Functions can invoke them) with the template's
        # environment, resolved. Their code runs in this process, which gets the same variables.
        from local.template import function_spec

        lam = self.client("lambda")
        environment: dict[str, str] = {}
        for logical_id, name in self._functions():
            spec = function_spec(self.template, logical_id)
            variables = {k: _resolve(v, refs, attrs) for k, v in spec["environment"].items()}
            if "CALLBACK_BASE_URL" in variables:
                variables["CALLBACK_BASE_URL"] = self.info["callback_base_url"]
            environment.update(variables)
            lam.create_function(
                FunctionName=name, Runtime="python3.12", Role=role_arn, Handler=spec["handler"],
                Code={"ZipFile": _placeholder_zip()}, Timeout=spec["timeout"], MemorySize=spec["memory"],
                Environment={"Variables": variables},
            )
        # Local stack only (the deployed stack never sets these): the emulator serves result videos
        # from http://127.0.0.1, which the result fetch policy refuses everywhere else.
        environment.update({
            "RESULT_HOST_ALLOWLIST": "127.0.0.1",
            "ALLOW_HTTP_FETCH": "true",
            "ALLOW_PRIVATE_NETWORK_FETCH": "true",
        })
        environment.update(self.options.function_environment)
        environment.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        environment.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon here
        # The caller may turn handler logging up or down (the demo keeps it quiet).
        environment["POWERTOOLS_LOG_LEVEL"] = os.environ.get("POWERTOOLS_LOG_LEVEL", environment.get("POWERTOOLS_LOG_LEVEL", "INFO"))
        os.environ.update(environment)

        definition = render_state_machine(self.template, {
            "FinalizeFunctionArn": attrs[("FinalizeFunction", "Arn")],
            "Partition": "aws",
            "ExecutionTimeoutSeconds": params["ExecutionTimeoutSeconds"],
        })
        created = self.client("stepfunctions").create_state_machine(
            name=state_machine_name, definition=definition, roleArn=role_arn, type="STANDARD")
        assert created["stateMachineArn"] == state_machine_arn, created["stateMachineArn"]
        self._stoppers.append(self._stop_executions)

        self.info.update(
            inbox_bucket=names["InboxBucket"], outputs_bucket=names["OutputsBucket"], jobs_table=names["JobsTable"],
            state_machine_arn=state_machine_arn, intake_queue_url=queue_url, intake_queue_arn=queue_arn,
            wake_queue_url=wake_queue_url, wake_queue_arn=wake_queue_arn,
            dead_letter_queue_url=dlq_url, prepare_queue_url=prepare_queue_url, prepare_queue_arn=prepare_queue_arn,
            prepare_dead_letter_queue_url=prepare_dlq_url, prepared_prefix=params["PreparedPrefix"],
            prepare_function=self.prepare_function, event_bus_name=names["JobEventsBus"], events_queue_url=events_queue_url,
            provider_secret_arn=secret_arn, incoming_prefix=params["IncomingPrefix"], output_prefix=params["OutputPrefix"],
            submit_function=self.submit_function, finalize_function=self.finalize_function,
            status_function=self.status_function,
            poll_interval_seconds=self.options.poll_interval_seconds, submit_max_concurrency=int(params["SubmitMaxConcurrency"]),
            default_provider=self.options.default_provider,
        )

    def _stop_executions(self) -> None:
        """moto's backends outlive this stack in the process: stop its pollers with it."""
        sfn = self.client("stepfunctions")
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.info["state_machine_arn"], statusFilter="RUNNING"
        ):
            for execution in page["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"], cause="local stack stopped")

    def runner_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"

    def _start_dispatcher(self) -> None:
        from local.sqs_dispatch import QueueDispatcher
        from local.template import function_events

        self.dispatcher = QueueDispatcher(
            self.client("sqs"),
            queue_url=self.info["intake_queue_url"],
            queue_arn=self.info["intake_queue_arn"],
            region=REGION,
            invoke=lambda event: self.runner.invoke(self.submit_function, event),
            max_concurrency=self.info["submit_max_concurrency"],
        )
        self.dispatcher.start()
        self._stoppers.append(self.dispatcher.stop)
        self.prepare_dispatcher = QueueDispatcher(
            self.client("sqs"),
            queue_url=self.info["prepare_queue_url"],
            queue_arn=self.info["prepare_queue_arn"],
            region=REGION,
            invoke=lambda event: self.runner.invoke(self.prepare_function, event),
            max_concurrency=2,  # the machine's cores; PrepareMaxConcurrency sizes it in AWS
            batch_size=1,
        )
        self.prepare_dispatcher.start()
        self._stoppers.append(self.prepare_dispatcher.stop)
        wake = function_events(self.template, "SubmitFunction")["Wake"]["Properties"]
        self.wake_dispatcher = QueueDispatcher(
            self.client("sqs"),
            queue_url=self.info["wake_queue_url"],
            queue_arn=self.info["wake_queue_arn"],
            region=REGION,
            invoke=lambda event: self.runner.invoke(self.submit_function, event),
            max_concurrency=int(wake["ScalingConfig"]["MaximumConcurrency"]),
            batch_size=int(wake["BatchSize"]),
        )
        self.wake_dispatcher.start()
        self._stoppers.append(self.wake_dispatcher.stop)

    def _write_info(self) -> None:
        self.info["pid"] = os.getpid()
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.options.state_dir / "local.json"
        path.write_text(json.dumps(self.info, indent=2) + "\n")
        self.info_path = path


def _placeholder_zip() -> bytes:
    """moto wants a code package; the real code runs in-process, so this is never executed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "clipedit local stack: handlers run in-process")
    return buffer.getvalue()


def main() -> None:
    stack = LocalStack()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    info = stack.start()
    print(json.dumps(info, indent=2))
    print(f"clipedit local stack ready; details in {stack.info_path}. Ctrl-C to stop.", flush=True)
    stop.wait()
    stack.stop()
    print("clipedit local stack stopped.")


if __name__ == "__main__":
    main()
