"""The local stand-in for the status API (an HTTP API with AWS_IAM on every route).

Like API Gateway, it checks the request's SigV4 signature (service ``execute-api``) before the
function runs: unsigned or wrongly signed requests get ``403 {"message": "Forbidden"}`` and never
reach the handler. The local stack's only identity is its fake credentials (``testing``); a valid
request becomes a payload v2.0 event with the IAM authorizer context API Gateway adds.
"""

from __future__ import annotations

import calendar
import hmac
import re
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from local.gateway import CallbackGateway

ACCOUNT = "123456789012"
ROUTES = [
    ("GET", re.compile(r"^/jobs/(?P<job_id>[^/]+)$"), "GET /jobs/{job_id}"),
    ("GET", re.compile(r"^/jobs$"), "GET /jobs"),
    ("POST", re.compile(r"^/jobs$"), "POST /jobs"),
    ("GET", re.compile(r"^/batches/(?P<batch_id>[^/]+)$"), "GET /batches/{batch_id}"),
    ("POST", re.compile(r"^/jobs/(?P<job_id>[^/]+)/review$"), "POST /jobs/{job_id}/review"),
]
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})$")
MAX_CLOCK_SKEW_SECONDS = 300  # API Gateway refuses signatures more than 5 minutes off


def signed_by(method: str, url: str, headers: Mapping[str, str], body: bytes,
              secrets: Mapping[str, str], *, region: str) -> str | None:
    """The access key that signed this request, or None when the signature does not verify."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    amz_date = headers.get("x-amz-date", "")
    if not match or match["service"] != "execute-api" or match["region"] != region or not amz_date:
        return None
    secret = secrets.get(match["key"])
    if secret is None or match["date"] != amz_date[:8]:
        return None
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None
    if abs(time.time() - signed_at) > MAX_CLOCK_SKEW_SECONDS:
        return None
    names = match["signed"].split(";")
    if "host" not in names or any(name not in headers for name in names):
        return None
    request = AWSRequest(method=method, url=url, data=body, headers={n: headers[n] for n in names})
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(match["key"], secret, headers.get("x-amz-security-token")), "execute-api", region)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    return match["key"] if hmac.compare_digest(expected, match["signature"]) else None


def status_api_event(method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
                     access_key: str) -> dict[str, Any] | None:
    split = urlsplit(raw_path)
    for route_method, pattern, route_key in ROUTES:
        match = pattern.match(split.path)
        if match and method == route_method:
            break
    else:
        return None
    now = time.time()
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": route_key, "rawPath": split.path, "rawQueryString": split.query,
        "headers": dict(headers),
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "local-status",
            "authorizer": {"iam": {"accessKey": access_key, "accountId": ACCOUNT, "callerId": access_key,
                                   "cognitoIdentity": None, "principalOrgId": None,
                                   "userArn": f"arn:aws:iam::{ACCOUNT}:user/local", "userId": access_key}},
            "domainName": headers.get("host", "localhost"),
            "http": {"method": method, "path": split.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": headers.get("user-agent", "")},
            "requestId": uuid.uuid4().hex, "routeKey": route_key, "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if match.groupdict():
        event["pathParameters"] = {k: unquote(v) for k, v in match.groupdict().items()}
    if body:
        event["body"] = body.decode("utf-8", errors="replace")
    return event


class StatusApiGateway(CallbackGateway):
    def __init__(self, invoke: Callable[[dict[str, Any]], dict[str, Any]], *, secrets: Mapping[str, str],
                 region: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(invoke, host, port)
        self._secrets = dict(secrets)
        self._region = region

    def _route(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        url = f"http://{headers.get('host', 'localhost')}{request.path}"
        access_key = signed_by(request.command, url, headers, body, self._secrets, region=self._region)
        if access_key is None:
            self._reply(request, 403, {"message": "Forbidden"})
            return
        event = status_api_event(request.command, request.path, headers, body, access_key)
        if event is None:
            self._reply(request, 404, {"message": "Not Found"})
            return
        self._relay(request, event)
