"""``clipedit doctor``: is everything a job needs in place? Each check says what it found and, when
something is wrong, what to do. Read-only, plus one harmless authenticated call to the provider."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

from clipedit_cli.target import Target

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # ok | warn | fail
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "state": self.state, "detail": self.detail}


def _aws_error(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Message") or f"{type(error).__name__}: {error}"


def check_identity(target: Target) -> Check:
    if target.kind == "local":
        return Check("credentials", OK, f"local stack at {target.endpoint_url} (fake credentials)")
    try:
        identity = target.client("sts").get_caller_identity()
    except Exception as error:  # noqa: BLE001 - every failure is reported, none raised
        return Check("credentials", FAIL, f"{_aws_error(error)}: run `aws sso login` / `aws configure` or pass --profile")
    return Check("credentials", OK, f"{identity['Arn']} (account {identity['Account']})")


def check_outputs(target: Target) -> Check:
    if target.kind == "local":
        return Check("stack outputs", OK, f"{target.name}")
    status = target.extra.get("stack_status", "?")
    state = OK if status.endswith("_COMPLETE") and "ROLLBACK" not in status else WARN
    missing = [o for o in ("StatusApiUrl", "DeadLetterQueueUrl") if o not in target.extra.get("outputs", {})]
    detail = f"stack {target.name} is {status}"
    if missing:
        state, detail = WARN, detail + f"; outputs missing: {', '.join(missing)} (an older template? redeploy)"
    return Check("stack outputs", state, detail)


def check_table(target: Target) -> Check:
    try:
        table = target.client("dynamodb").describe_table(TableName=target.jobs_table)["Table"]
    except Exception as error:  # noqa: BLE001
        return Check("jobs table", FAIL, f"{target.jobs_table}: {_aws_error(error)}")
    indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
    missing = {"by-status", "by-batch"} - indexes
    if missing:
        return Check("jobs table", FAIL, f"{target.jobs_table} lacks index(es) {', '.join(sorted(missing))}: redeploy")
    return Check("jobs table", OK, f"{target.jobs_table} ({table.get('TableStatus', 'ACTIVE')}, indexes by-status, by-batch)")


def check_inbox(target: Target) -> Check:
    s3 = target.client("s3")
    try:
        s3.head_bucket(Bucket=target.inbox_bucket)
        versioning = s3.get_bucket_versioning(Bucket=target.inbox_bucket).get("Status")
    except Exception as error:  # noqa: BLE001
        return Check("inbox bucket", FAIL, f"{target.inbox_bucket}: {_aws_error(error)}")
    if versioning != "Enabled":
        return Check("inbox bucket", FAIL, f"{target.inbox_bucket} is not versioned: job ids depend on versions")
    return Check("inbox bucket", OK, f"{target.inbox_bucket} (versioned)")


def read_secret(target: Target) -> tuple[Check, dict[str, Any] | None]:
    import json

    try:
        raw = target.client("secretsmanager").get_secret_value(SecretId=target.provider_secret_id)["SecretString"]
        secret = json.loads(raw)
        assert isinstance(secret, dict)
    except Exception as error:  # noqa: BLE001
        return Check("provider secret", FAIL, f"cannot read it: {_aws_error(error)}"), None
    present = sorted(k for k, v in secret.items() if isinstance(v, str) and v.strip())
    if not ({"api_key"} <= set(present) or {"access_key", "secret_key"} <= set(present)):
        return Check("provider secret", FAIL, "it holds no credentials (still the placeholder?): aws secretsmanager "
                     f"put-secret-value --secret-id {target.provider_secret_id} --secret-string "
                     "'{\"access_key\":\"...\",\"secret_key\":\"...\"}'"), None
    # Names of the fields only: a key never reaches the terminal.
    return Check("provider secret", OK, f"holds {', '.join(present)}"), secret


# --- the provider key: one harmless authenticated call per provider ------------------------------

KLING_AUTH_CODES = {1000, 1001, 1002, 1003, 1004}
KLING_ACCOUNT_CODES = {1100, 1101, 1102, 1103}


def check_kling(target: Target, secret: dict[str, Any]) -> Check:
    """Ask Kling for a task that cannot exist: "not found" proves the key is accepted, 1000-1004
    say it is not, 1100-1103 that the account cannot work. Costs nothing, creates nothing."""
    import httpx

    from clipedit.adapters.kling import KlingCredentials, KlingProvider, KlingTokenSource
    from clipedit.domain.errors import ProviderError

    try:
        credentials = KlingCredentials.from_secret(secret)
    except ProviderError as error:
        return Check("provider key", FAIL, error.message)
    provider = KlingProvider(target.provider_base_url, KlingTokenSource(lambda: credentials),
                             httpx.Client(timeout=httpx.Timeout(10.0)))
    probe = f"clipedit-doctor-{uuid.uuid4().hex[:12]}"
    where = target.provider_base_url
    try:
        provider.get_task(probe)
    except ProviderError as error:
        code = error.provider_code
        if code in KLING_AUTH_CODES:
            return Check("provider key", FAIL, f"Kling at {where} refused the key ({error.message}); "
                         "check the access/secret key pair, and that the host matches the account's region")
        if code in KLING_ACCOUNT_CODES:
            return Check("provider key", FAIL, f"the key works but the account cannot run tasks ({error.message}); "
                         f"top up the API resource pack")
        if code is not None:
            return Check("provider key", OK, f"Kling at {where} accepted the key (a lookup of a made-up task "
                         f"answered code {code})")
        return Check("provider key", FAIL, f"Kling at {where}: {error.message}")
    return Check("provider key", OK, f"Kling at {where} accepted the key")


def check_fal(target: Target, secret: dict[str, Any]) -> Check:
    """Ask fal's queue for the status of a request that cannot exist: 404 proves the key is
    accepted, 401/403 that it is not (or the account is out of credit). Creates nothing."""
    import httpx

    from clipedit.adapters.fal import QUEUE_BASE_URL, FalCredentials, FalProvider
    from clipedit.domain.errors import ProviderError
    from clipedit.domain.provider_errors import ErrorKind

    try:
        credentials = FalCredentials.from_secret(secret)
    except ProviderError as error:
        return Check("fal key", FAIL, error.message)
    where = target.fal_base_url or QUEUE_BASE_URL
    provider = FalProvider(lambda: credentials, httpx.Client(timeout=httpx.Timeout(10.0)), where)
    try:
        provider.get_task(f"clipedit-doctor-{uuid.uuid4().hex[:12]}")
    except ProviderError as error:
        if error.kind is ErrorKind.ACCOUNT:
            return Check("fal key", FAIL, f"fal at {where} refused the key ({error.message})")
        if error.code == "FAL_NOT_FOUND":
            return Check("fal key", OK, f"fal at {where} accepted the key (a made-up request is not found)")
        return Check("fal key", WARN, f"fal at {where}: {error.message}")
    return Check("fal key", OK, f"fal at {where} accepted the key")


PROVIDER_CHECKS: dict[str, Callable[[Target, dict[str, Any]], Check]] = {"kling": check_kling, "fal": check_fal}
# Which secret fields show that a provider is meant to be used (then its key is checked too).
PROVIDER_SECRET_FIELDS = {"kling": ("access_key", "api_key"), "fal": ("fal_key",)}


def run_checks(target: Target) -> list[Check]:
    checks = [Check("target", OK, target.describe()), check_identity(target)]
    if checks[-1].state == FAIL:
        return checks
    checks += [check_outputs(target), check_table(target), check_inbox(target)]
    secret_check, secret = read_secret(target)
    checks.append(secret_check)
    if secret is None:
        checks.append(Check("provider key", FAIL, "not checked: the secret has no credentials"))
        return checks
    # The default provider's key always; the other's when the secret holds one.
    for name, provider_check in PROVIDER_CHECKS.items():
        if name == target.provider or any(secret.get(f) for f in PROVIDER_SECRET_FIELDS[name]):
            checks.append(provider_check(target, secret))
    return checks
