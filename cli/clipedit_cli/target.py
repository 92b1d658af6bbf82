"""Which stack the command talks to: a deployed one (by stack name, from its CloudFormation outputs)
or the local stack (from the ``.clipedit/local.json`` it writes while running).

Order: ``--stack`` (or ``CLIPEDIT_STACK``) wins; else ``--local-file`` (or ``CLIPEDIT_LOCAL_FILE``);
else ``.clipedit/local.json`` in this directory or a parent, or in the checkout the command is
installed from. Anything missing or not answering is a clear error with exit code 3.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clipedit_cli.errors import CliError, Exit

LOCAL_FILE = Path(".clipedit") / "local.json"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Outputs of template.yaml the command needs, and what it calls them.
REQUIRED_OUTPUTS = {
    "InboxBucketName": "inbox_bucket", "OutputsBucketName": "outputs_bucket", "JobsTableName": "jobs_table",
    "IntakeQueueUrl": "intake_queue_url", "EventBusName": "event_bus_name", "ProviderSecretArn": "provider_secret_id",
}
OPTIONAL_OUTPUTS = {"DeadLetterQueueUrl": "dead_letter_queue_url", "StatusApiUrl": "status_api_url"}


@dataclass
class Target:
    kind: str  # "stack" or "local"
    name: str  # stack name, or the local file's path
    region: str
    inbox_bucket: str
    outputs_bucket: str
    jobs_table: str
    intake_queue_url: str
    event_bus_name: str
    provider_secret_id: str
    provider_base_url: str
    endpoint_url: str | None = None  # the local stack's moto endpoint
    dead_letter_queue_url: str | None = None
    status_api_url: str | None = None
    provider: str = "kling"  # the stack's default provider (jobs may name another)
    fal_base_url: str | None = None
    fal_jwks_url: str | None = None
    price_overrides: str | None = None  # the stack's PriceOverrides parameter (JSON)
    extra: dict[str, Any] = field(default_factory=dict)
    session: Any = None

    def client(self, service: str, **kwargs: Any) -> Any:
        if self.endpoint_url:
            kwargs.setdefault("endpoint_url", self.endpoint_url)
        return self.session.client(service, **kwargs)

    def describe(self) -> str:
        return f"stack {self.name} ({self.region})" if self.kind == "stack" else f"local stack ({self.endpoint_url})"


def find_local_file(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / LOCAL_FILE).is_file():
            return folder / LOCAL_FILE
    candidate = SOURCE_ROOT / LOCAL_FILE
    return candidate if candidate.is_file() else None


def resolve_target(*, stack: str | None = None, region: str | None = None, profile: str | None = None,
                   local_file: str | None = None, environ: dict[str, str] | None = None,
                   probe: Callable[[str], bool] | None = None) -> Target:
    env = os.environ if environ is None else environ
    stack = stack or env.get("CLIPEDIT_STACK") or None
    if stack:
        return _deployed(stack, region=region, profile=profile)
    named = local_file or env.get("CLIPEDIT_LOCAL_FILE")
    path = Path(named) if named else find_local_file()
    if path is None:
        raise CliError(
            "no stack to talk to: pass --stack NAME (or set CLIPEDIT_STACK) for a deployed stack, or start the "
            "local stack with `clipedit local` (or `make local`) in another terminal", Exit.NO_TARGET)
    return _local(path, probe or _endpoint_answers)


def _local(path: Path, probe: Callable[[str], bool]) -> Target:
    import boto3

    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"{path} does not exist: start the local stack with `clipedit local`", Exit.NO_TARGET) from None
    except ValueError:
        raise CliError(f"{path} is not the JSON the local stack writes; delete it and restart the local stack",
                       Exit.NO_TARGET) from None
    pid = info.get("pid")
    if isinstance(pid, int) and not _process_alive(pid):
        raise CliError(f"the local stack recorded in {path} is not running (process {pid} is gone): "
                       "start it again with `clipedit local`", Exit.NO_TARGET)
    endpoint = info.get("endpoint_url", "")
    if not endpoint or not probe(endpoint):
        raise CliError(f"the local stack recorded in {path} does not answer at {endpoint or '(no endpoint)'}: "
                       "start it again with `clipedit local`", Exit.NO_TARGET)
    session = boto3.session.Session(region_name=info["region"], **LOCAL_CREDENTIALS)
    return Target(
        kind="local", name=str(path), region=info["region"], endpoint_url=endpoint,
        inbox_bucket=info["inbox_bucket"], outputs_bucket=info["outputs_bucket"], jobs_table=info["jobs_table"],
        intake_queue_url=info["intake_queue_url"], event_bus_name=info["event_bus_name"],
        provider_secret_id=info["provider_secret_arn"], provider_base_url=info["provider_url"],
        dead_letter_queue_url=info.get("dead_letter_queue_url"), status_api_url=info.get("status_api_url"),
        provider=info.get("default_provider") or "kling", fal_base_url=info.get("fal_url"),
        fal_jwks_url=info.get("fal_jwks_url"), price_overrides=info.get("price_overrides"),
        extra={"events_queue_url": info.get("events_queue_url")}, session=session,
    )


def _deployed(stack: str, *, region: str | None, profile: str | None) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as error:
        raise CliError(f"{error}: check --profile / AWS_PROFILE", Exit.NO_TARGET) from None
    if not session.region_name:
        raise CliError("no AWS region: pass --region or set AWS_REGION (the stack's region)", Exit.NO_TARGET)
    try:
        (description,) = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except NoCredentialsError:
        raise CliError("no AWS credentials found: run `aws configure` / `aws sso login`, or pass --profile",
                       Exit.NO_TARGET) from None
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        raise CliError(f"cannot read stack {stack!r} in {session.region_name}: {message}", Exit.NO_TARGET) from None
    except BotoCoreError as error:
        raise CliError(f"cannot reach CloudFormation in {session.region_name}: {error}", Exit.NO_TARGET) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
    missing = sorted(k for k in REQUIRED_OUTPUTS if k not in outputs)
    if missing:
        raise CliError(f"stack {stack!r} has no output(s) {', '.join(missing)}: is it a clipedit stack, fully "
                       f"deployed? (status {description.get('StackStatus')})", Exit.NO_TARGET)
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in description.get("Parameters", [])}
    fields = {name: outputs[key] for key, name in REQUIRED_OUTPUTS.items()}
    fields.update({name: outputs[key] for key, name in OPTIONAL_OUTPUTS.items() if key in outputs})
    return Target(kind="stack", name=stack, region=session.region_name, session=session,
                  provider_base_url=parameters.get("KlingApiBaseUrl") or "https://api-singapore.klingai.com",
                  provider=parameters.get("DefaultProvider") or "kling",
                  fal_base_url=parameters.get("FalQueueBaseUrl") or None,
                  fal_jwks_url=parameters.get("FalJwksUrl") or None,
                  price_overrides=parameters.get("PriceOverrides") or None,
                  extra={"stack_status": description.get("StackStatus"), "outputs": outputs}, **fields)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def _endpoint_answers(endpoint: str) -> bool:
    import httpx

    from clipedit.adapters.tls import shared_ssl_context

    try:  # the process's one TLS context: building a fresh one costs ~20 ms per command
        httpx.get(f"{endpoint}/moto-api/", timeout=2.0, verify=shared_ssl_context())
    except httpx.HTTPError:
        return False
    return True
