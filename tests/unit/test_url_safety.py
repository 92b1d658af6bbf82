"""SSRF guard for URLs we did not build: the policy (pure), the guarded httpx client against loopback
servers (no real network: host names go through a fake resolver, "public" addresses through a fake
network that leads to the loopback server), the result fetcher's size cap, and finalize/submit
ending a job FAILED/REJECTED with the policy's code."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest

from clipedit.adapters.http_fetch import HttpMediaFetcher
from clipedit.adapters.media_inspector import RangeMediaInspector
from clipedit.adapters.safe_http import SafeClient, safe_client
from clipedit.config import Settings
from clipedit.domain.errors import MediaRejected, ProviderError, UrlRejected
from clipedit.domain.job import JobStatus
from clipedit.domain.manifest import MediaRef
from clipedit.domain.url_policy import KLING_RESULT_HOSTS, RESULT_HOSTS, UrlPolicy
from clipedit.ports import TaskState

# A public address that only exists in the fake network below: nothing ever leaves the machine.
PUBLIC_IP = "93.184.216.34"


def refused(call: Any, *args: Any, **kwargs: Any) -> UrlRejected:
    with pytest.raises(UrlRejected) as info:
        call(*args, **kwargs)
    return info.value


# --- the policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254",                       # loopback
    "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1", "192.168.255.255",
    "169.254.169.254", "169.254.170.2", "169.254.0.1",     # link-local: EC2/Lambda metadata, ECS creds
    "100.64.0.1", "100.127.255.254",                      # CGNAT
    "0.0.0.0", "0.1.2.3",                                 # unspecified / "this network"
    "224.0.0.1", "239.255.255.250",                       # multicast
    "240.0.0.1", "255.255.255.255",                       # reserved / broadcast
    "192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1",
    "::1", "::", "fc00::1", "fd00:ec2::254", "fe80::1", "fe80::1%1", "ff02::1", "fec0::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:192.168.1.1",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",              # NAT64 of metadata, of loopback
    "2002:a9fe:a9fe::1", "2002:0a00:0001::1",             # 6to4 of metadata, of 10.0.0.1
])
def test_non_public_addresses_are_refused(address):
    error = refused(UrlPolicy().check_address, address)
    assert error.code == "URL_ADDRESS_NOT_ALLOWED"
    UrlPolicy(allow_private=True).check_address(address)  # the local stack's switch lets them through


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", PUBLIC_IP, "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255",
    "169.253.255.255", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8",
    "64:ff9b::808:808",
])
def test_public_addresses_pass(address):
    UrlPolicy().check_address(address)


def test_garbage_is_not_an_address():
    assert refused(UrlPolicy().check_address, "not-an-ip").code == "URL_ADDRESS_NOT_ALLOWED"


def test_a_refused_resolution_names_the_host_not_the_internal_address():
    error = refused(UrlPolicy().check_address, "10.1.2.3", host="db.internal.example")
    assert "db.internal.example" in error.message and "10.1.2.3" not in error.message


@pytest.mark.parametrize(("host", "allowed"), [
    ("a.klingai.com", True), ("x.y.klingai.com", True), ("P1-KLING.KlingAI.com", True),
    ("a.klingai.com.", True), ("klingai.com", False), ("klingai.com.evil.net", False),
    ("evilklingai.com", False), ("a.klingai.co", False), ("a-klingai.com", False),
    ("h1.inkwai.com", True), ("p1.a.kwimgs.com", True), ("v2.kwaicdn.com", True), ("cdn.example", False),
])
def test_wildcards_match_subdomains_only(host, allowed):
    policy = UrlPolicy(KLING_RESULT_HOSTS)
    assert policy.host_allowed(host) is allowed
    if allowed:
        policy.check_url(f"https://{host}/bs2/out.mp4?x-kcdn-pid=1")
    else:
        assert refused(policy.check_url, f"https://{host}/out.mp4").code == "URL_HOST_NOT_ALLOWED"


def test_exact_hosts_and_an_empty_allowlist():
    exact = UrlPolicy(("media.example.com",))
    exact.check_url("https://media.example.com/a.png")
    assert refused(exact.check_url, "https://x.media.example.com/a.png").code == "URL_HOST_NOT_ALLOWED"
    UrlPolicy().check_url("https://anything.example.net/a.png")  # empty = any (public) host


@pytest.mark.parametrize("url", ["http://a.klingai.com/x.mp4", "ftp://a.klingai.com/x", "file:///etc/passwd",
                                 "gopher://a.klingai.com/", "a.klingai.com/x.mp4", "//a.klingai.com/x"])
def test_only_https(url):
    assert refused(UrlPolicy(KLING_RESULT_HOSTS).check_url, url).code == "URL_SCHEME_NOT_ALLOWED"


def test_allow_http_adds_http_and_nothing_else():
    policy = UrlPolicy(("a.example",), allow_http=True)
    policy.check_url("http://a.example/x")
    assert refused(policy.check_url, "ftp://a.example/x").code == "URL_SCHEME_NOT_ALLOWED"


@pytest.mark.parametrize("url", ["https://user:secret@a.klingai.com/x.mp4", "https://user@a.klingai.com/x.mp4",
                                 "https://evil.net\\@a.klingai.com/x", "https://a.klingai.com:@evil.net/x"])
def test_credentials_in_the_url_are_refused_and_not_repeated(url):
    error = refused(UrlPolicy(KLING_RESULT_HOSTS).check_url, url)
    assert error.code == "URL_HAS_CREDENTIALS" and "secret" not in error.message


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data/", "https://127.0.0.1/", "https://[::1]/",
                                 "https://[::ffff:a9fe:a9fe]/", "https://10.0.0.7:8443/x"])
def test_ip_literals_are_checked_before_any_connection(url):
    assert refused(UrlPolicy().check_url, url).code == "URL_ADDRESS_NOT_ALLOWED"


def test_messages_never_carry_the_query_string():
    error = refused(UrlPolicy(KLING_RESULT_HOSTS).check_url, "https://evil.example/v.mp4?X-Amz-Signature=abc&sig=xyz")
    assert "evil.example" in error.message and "Signature" not in error.message and "xyz" not in error.message


@pytest.mark.parametrize("pattern", ["*", "*.com", "https://a.example", "a.example/path", "a b", "*.", ".a.example."])
def test_bad_allowlist_entries_are_refused(pattern):
    with pytest.raises(ValueError):
        UrlPolicy((pattern,))


# --- loopback servers and a fake network ------------------------------------------------------------


class _Server:
    """Answers GET/HEAD by path: ``routes[path] = (status, headers, body)``; records each request."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body_too: bool) -> None:
                server.requests.append((self.command, self.path, self.headers.get("Host")))
                status, headers, body = server.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value.replace("{port}", str(server.port)))
                if "Content-Length" not in headers:
                    self.send_header("Connection", "close")  # body delimited by the close
                self.end_headers()
                if body_too:
                    self.wfile.write(body)
                if "Content-Length" not in headers:
                    self.close_connection = True

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    @contextmanager
    def running(self) -> Iterator[_Server]:
        thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def ok(body: bytes = b"ok") -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Length": str(len(body))}, body


def redirect(location: str, status: int = 302) -> tuple[int, dict[str, str], bytes]:
    return status, {"Location": location, "Content-Length": "0"}, b""


class FakeResolver:
    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"fake resolver: no such host {host}")
        return self.names[host]


class FakeNetwork(httpcore.NetworkBackend):
    """Connects PUBLIC_IP to the loopback server; records what it was asked to connect to."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connected: list[str] = []
        self._real = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connected.append(host)
        if host != PUBLIC_IP:
            raise httpcore.ConnectError(f"fake network: {host} unreachable")
        return self._real.connect_tcp("127.0.0.1", self.port, timeout=timeout)

    def sleep(self, seconds: float) -> None:
        self._real.sleep(seconds)


@pytest.fixture
def cdn() -> Iterator[_Server]:
    routes = {
        "/ok": ok(b"result-bytes"),
        "/to-other-host": redirect("http://files.elsewhere.example/ok"),
        "/to-private-name": redirect("http://internal.cdn.test:{port}/ok"),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        "/to-loopback": redirect("http://127.0.0.1:{port}/ok"),
        "/to-same-host": redirect("/ok", 301),
        "/hop1": redirect("/hop2"), "/hop2": redirect("/hop3"), "/hop3": redirect("/ok"),
        "/loop": redirect("/loop", 307),
    }
    with _Server(routes).running() as server:
        yield server


@pytest.fixture
def public_cdn(cdn):
    """A client for "cdn.test" (a public address in the fake network); private addresses refused."""
    resolver = FakeResolver({"cdn.test": [PUBLIC_IP], "internal.cdn.test": ["10.0.0.5"],
                             "meta.cdn.test": ["169.254.169.254"], "mixed.cdn.test": [PUBLIC_IP, "127.0.0.1"]})
    network = FakeNetwork(cdn.port)
    policy = UrlPolicy(("cdn.test", "*.cdn.test"), allow_http=True)
    with safe_client(policy, 5.0, resolver=resolver, network_backend=network) as client:
        yield client, resolver, network, f"http://cdn.test:{cdn.port}"


# --- the guarded client ------------------------------------------------------------------------------


def test_an_allowed_public_host_is_fetched_through_its_checked_address(public_cdn, cdn):
    client, resolver, network, base = public_cdn
    response = client.get(f"{base}/ok")
    assert response.status_code == 200 and response.content == b"result-bytes"
    assert network.connected == [PUBLIC_IP]  # the checked address, never the name: no second lookup
    assert resolver.asked == ["cdn.test"]
    assert cdn.requests[-1][2] == f"cdn.test:{cdn.port}"  # the Host header is the URL's host


def test_same_host_redirects_are_followed_up_to_three_hops(public_cdn, cdn):
    client, _, _, base = public_cdn
    assert client.get(f"{base}/to-same-host").content == b"result-bytes"
    assert client.get(f"{base}/hop1").content == b"result-bytes"  # 3 redirects: allowed


def test_a_redirect_loop_stops_after_three_hops(public_cdn, cdn):
    client, _, _, base = public_cdn
    error = refused(client.get, f"{base}/loop")
    assert error.code == "URL_TOO_MANY_REDIRECTS"
    assert [path for _, path, _ in cdn.requests] == ["/loop"] * 4  # the first request + 3 hops


@pytest.mark.parametrize(("path", "code"), [
    ("/to-other-host", "URL_HOST_NOT_ALLOWED"),
    ("/to-private-name", "URL_ADDRESS_NOT_ALLOWED"),   # allowlisted name, private address
    ("/to-metadata", "URL_HOST_NOT_ALLOWED"),
])
def test_redirects_out_of_the_policy_are_refused(public_cdn, cdn, path, code):
    client, resolver, network, base = public_cdn
    for follow in (False, True):  # a caller asking httpx to follow changes nothing
        error = refused(client.get, f"{base}{path}", follow_redirects=follow)
        assert error.code == code
    assert set(network.connected) == {PUBLIC_IP}  # only the allowed first hop was ever connected


def test_the_transport_alone_checks_every_hop_even_when_httpx_follows(public_cdn, cdn):
    from clipedit.adapters.safe_http import PolicyTransport

    _, resolver, network, base = public_cdn
    transport = PolicyTransport(UrlPolicy(("cdn.test", "*.cdn.test"), allow_http=True), resolver=resolver,
                                network_backend=network)
    with httpx.Client(transport=transport, follow_redirects=True) as plain:
        assert plain.get(f"{base}/hop1").content == b"result-bytes"
        assert refused(plain.get, f"{base}/to-other-host").code == "URL_HOST_NOT_ALLOWED"
        assert refused(plain.get, f"{base}/to-metadata").code == "URL_HOST_NOT_ALLOWED"
    assert set(network.connected) == {PUBLIC_IP}


def test_a_redirect_to_a_private_ip_is_refused_with_an_open_allowlist(cdn):
    resolver = FakeResolver({"cdn.test": [PUBLIC_IP]})
    network = FakeNetwork(cdn.port)
    with safe_client(UrlPolicy(allow_http=True), 5.0, resolver=resolver, network_backend=network) as client:
        for path in ("/to-metadata", "/to-loopback"):
            assert refused(client.get, f"http://cdn.test:{cdn.port}{path}").code == "URL_ADDRESS_NOT_ALLOWED"
    assert set(network.connected) == {PUBLIC_IP}
    assert {path for _, path, _ in cdn.requests} == {"/to-metadata", "/to-loopback"}  # never /ok


def test_a_redirect_from_https_to_http_is_refused():
    # A canned https server (httpcore's MockBackend: TLS is a no-op) redirecting to plain http.
    backend = httpcore.MockBackend([b"HTTP/1.1 302 Found\r\n", b"Location: http://a.klingai.com/v.mp4\r\n",
                                    b"Content-Length: 0\r\n", b"\r\n"])
    resolver = FakeResolver({"a.klingai.com": [PUBLIC_IP]})
    with safe_client(UrlPolicy(KLING_RESULT_HOSTS), 5.0, resolver=resolver, network_backend=backend) as client:
        error = refused(client.get, "https://a.klingai.com/v.mp4?sig=s")
    assert error.code == "URL_SCHEME_NOT_ALLOWED" and "sig=" not in error.message


@pytest.mark.parametrize(("host", "code"), [("meta.cdn.test", "URL_ADDRESS_NOT_ALLOWED"),
                                            ("internal.cdn.test", "URL_ADDRESS_NOT_ALLOWED"),
                                            ("mixed.cdn.test", "URL_ADDRESS_NOT_ALLOWED")])
def test_a_name_resolving_to_a_private_address_is_never_connected(public_cdn, host, code):
    client, resolver, network, _ = public_cdn
    error = refused(client.get, f"http://{host}/latest/meta-data/")
    assert error.code == code and host in error.message
    assert "169.254" not in error.message and "10.0.0.5" not in error.message  # internal DNS not revealed
    assert network.connected == []  # every address is checked before the first connection


def test_dns_rebinding_cannot_swap_the_address_after_the_check(cdn):
    answers = iter([[PUBLIC_IP], ["169.254.169.254"]])  # a second lookup would get the metadata address
    network = FakeNetwork(cdn.port)
    policy = UrlPolicy(("cdn.test",), allow_http=True)
    with safe_client(policy, 5.0, resolver=lambda host, port: next(answers), network_backend=network) as client:
        assert client.get(f"http://cdn.test:{cdn.port}/ok").status_code == 200
    assert network.connected == [PUBLIC_IP]


def test_loopback_is_reachable_only_when_private_fetches_are_allowed(cdn):
    url = f"http://127.0.0.1:{cdn.port}/ok"
    with safe_client(UrlPolicy(("127.0.0.1",), allow_http=True, allow_private=True), 5.0) as client:
        assert client.get(url).content == b"result-bytes"  # the local stack's setting
    with safe_client(UrlPolicy(("127.0.0.1",), allow_http=True), 5.0) as client:
        assert refused(client.get, url).code == "URL_ADDRESS_NOT_ALLOWED"
    with safe_client(UrlPolicy(KLING_RESULT_HOSTS, allow_http=True, allow_private=True), 5.0) as client:
        assert refused(client.get, url).code == "URL_HOST_NOT_ALLOWED"
    assert len(cdn.requests) == 1


def test_environment_proxies_are_ignored(cdn, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://10.9.9.9:3128")  # would be unreachable, and unchecked
    with safe_client(UrlPolicy(("127.0.0.1",), allow_http=True, allow_private=True), 5.0) as client:
        assert client.get(f"http://127.0.0.1:{cdn.port}/ok").status_code == 200


def test_unresolvable_names_are_network_errors_not_refusals(public_cdn):
    client, *_ = public_cdn
    with pytest.raises(httpx.ConnectError):
        client.get("http://gone.cdn.test/x")


def test_requests_built_by_hand_are_checked_too(public_cdn):
    client, _, network, _ = public_cdn
    request = client.build_request("GET", "http://169.254.169.254/latest/meta-data/")
    assert refused(client.send, request, stream=True).code == "URL_HOST_NOT_ALLOWED"
    assert network.connected == []


# --- the result fetcher ------------------------------------------------------------------------------


def test_an_oversized_result_is_refused_by_the_size_cap(cdn):
    cdn.routes["/big"] = ok(b"x" * 5000)
    cdn.routes["/big-unannounced"] = (200, {}, b"x" * 5000)  # no Content-Length: counted while read
    client = safe_client(UrlPolicy(("127.0.0.1",), allow_http=True, allow_private=True), 5.0)
    fetcher = HttpMediaFetcher(client, max_bytes=1000)
    for path in ("/big", "/big-unannounced"):
        with pytest.raises(ProviderError) as info:
            with fetcher.open(f"http://127.0.0.1:{cdn.port}{path}") as chunks:
                b"".join(chunks)
        assert (info.value.code, info.value.retryable) == ("OUTPUT_TOO_LARGE", False)
    with fetcher.open(f"http://127.0.0.1:{cdn.port}/ok") as chunks:
        assert b"".join(chunks) == b"result-bytes"


def test_the_fetcher_refuses_a_result_off_the_allowlist_before_any_connection():
    network = FakeNetwork(1)
    fetcher = HttpMediaFetcher(safe_client(UrlPolicy(KLING_RESULT_HOSTS), 5.0, network_backend=network))
    with pytest.raises(UrlRejected) as info:
        with fetcher.open("https://attacker.example/v.mp4?sig=abc"):
            pass
    assert info.value.code == "URL_HOST_NOT_ALLOWED" and network.connected == []


# --- wiring -------------------------------------------------------------------------------------------

BASE_ENV = {"JOBS_TABLE": "jobs", "INBOX_BUCKET": "in", "OUTPUTS_BUCKET": "out", "EVENT_BUS_NAME": "bus",
            "PROVIDER_SECRET_ID": "arn:secret"}


def test_wiring_guards_the_result_fetcher_and_the_inspector():
    from clipedit.wiring import Container

    container = Container(Settings.from_env(BASE_ENV))
    client = container.fetcher._client
    assert isinstance(client, SafeClient) and not client.follow_redirects
    assert client.policy == UrlPolicy(RESULT_HOSTS)  # Kling's and fal's CDNs
    local = Container(Settings.from_env(dict(BASE_ENV, RESULT_HOST_ALLOWLIST="127.0.0.1", ALLOW_HTTP_FETCH="true",
                                             ALLOW_PRIVATE_NETWORK_FETCH="true")))
    assert local.fetcher._client.policy == UrlPolicy(("127.0.0.1",), allow_http=True, allow_private=True)
    # Users' references stay https-only and public even where the local stack relaxes results.
    assert local.settings.reference_url_policy == UrlPolicy()


def test_wiring_builds_the_prepare_reference_fetcher_on_its_first_download():
    pytest.importorskip("av")  # the prepare function's media layer
    from contextlib import contextmanager

    from clipedit.wiring import Container, LazyMediaFetcher

    container = Container(Settings.from_env(dict(BASE_ENV, INTAKE_QUEUE_URL="https://sqs/q")),
                          client_factory=lambda service, **kwargs: object())
    fetcher = container.prepare_clip._fetcher
    assert isinstance(fetcher, LazyMediaFetcher) and fetcher._fetcher is None  # no httpx client at cold start
    client = fetcher._build()._client
    assert isinstance(client, SafeClient) and client.policy == container.settings.reference_url_policy

    built = []

    class Fetcher:
        @contextmanager
        def open(self, url):
            yield iter([url.encode()])

    lazy = LazyMediaFetcher(lambda: built.append(1) or Fetcher())
    for _ in range(2):
        with lazy.open("https://example.com/a.mp4") as chunks:
            assert list(chunks) == [b"https://example.com/a.mp4"]
    assert built == [1]  # built once, on the first download


# --- use cases: finalize ends FAILED, submit REJECTED ---------------------------------------------------


def _finalize_with(fetcher):
    from clipedit.domain.job import Job
    from clipedit.ports import EditRequest
    from clipedit.usecases.common import StatusRecorder, iso
    from clipedit.usecases.finalize import FinalizeJob, FinalizeSettings
    from clipedit.usecases.submit import hash_token
    from tests.fakes import FakeClock, FakeEvents, FakeJobStore, FakeObjectStore, FakeProvider

    jobs, storage, provider, events, clock = FakeJobStore(), FakeObjectStore(), FakeProvider(), FakeEvents(), FakeClock()
    finalize = FinalizeJob(
        jobs=jobs, storage=storage, provider=provider, fetcher=fetcher, clock=clock,
        recorder=StatusRecorder(events=events, now=lambda: iso(clock.now())),
        settings=FinalizeSettings(outputs_bucket="outputs", incoming_prefix="incoming/", output_prefix="edited/"),
    )
    task = provider.submit(EditRequest(external_id="j-1", prompt="p", video_url="u", model="o3", mode="pro",
                                       keep_audio=True))
    now = iso(clock.now())
    jobs.create(Job(job_id="j-1", status=JobStatus.SUBMITTED, input_bucket="inbox", input_key="incoming/a.mp4",
                    created_at=now, updated_at=now, provider_task_id=task.task_id,
                    callback_token_hash=hash_token("secret-token"), deadline_at=iso(clock.now() + 600)))
    return finalize, jobs, storage, provider, events, task.task_id


@pytest.mark.parametrize("door", ["poller", "callback"])
def test_a_result_off_the_allowlist_fails_the_job_without_an_output(door):
    network = FakeNetwork(1)
    fetcher = HttpMediaFetcher(safe_client(UrlPolicy(KLING_RESULT_HOSTS), 5.0, network_backend=network))
    finalize, jobs, storage, provider, events, task_id = _finalize_with(fetcher)
    provider.set_state(task_id, TaskState.SUCCEEDED,
                       video_url="https://attacker.example/out.mp4?X-Amz-Signature=topsecret&token=t0k")
    if door == "callback":  # the callback only notes "provider done"; the check it wakes fetches
        assert finalize.on_callback("j-1", "secret-token").terminal is False
    outcome = finalize.on_poll("j-1")
    assert (outcome.status, outcome.terminal) == ("FAILED", True)
    job = jobs.get("j-1")
    assert job.error_code == "URL_HOST_NOT_ALLOWED"
    assert "attacker.example" in job.error_message
    assert "topsecret" not in job.error_message and "t0k" not in job.error_message and "?" not in job.error_message
    assert storage.uploads == [] and storage.objects == {} and network.connected == []
    assert "finalize_lease_owner" not in job.extra
    assert events.published[-1][1]["status"] == "FAILED"
    assert finalize.on_poll("j-1").status == "FAILED"  # terminal: the next poll changes nothing


def test_a_result_on_a_kling_host_resolving_to_metadata_fails_the_job():
    resolver = FakeResolver({"p1-kling.klingai.com": ["169.254.169.254"]})
    network = FakeNetwork(1)
    fetcher = HttpMediaFetcher(safe_client(UrlPolicy(KLING_RESULT_HOSTS), 5.0, resolver=resolver,
                                           network_backend=network))
    finalize, jobs, storage, provider, _, task_id = _finalize_with(fetcher)
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url="https://p1-kling.klingai.com/bs2/out.mp4?x-kcdn-pid=1")
    assert finalize.on_poll("j-1").status == "FAILED"
    job = jobs.get("j-1")
    assert job.error_code == "URL_ADDRESS_NOT_ALLOWED" and "p1-kling.klingai.com" in job.error_message
    assert storage.uploads == [] and network.connected == []


def test_an_oversized_result_fails_the_job_and_a_retryable_error_does_not():
    from tests.fakes import FakeFetcher

    fetcher = FakeFetcher({"https://a.klingai.com/v.mp4": b"x" * 5000})
    finalize, jobs, storage, provider, _, task_id = _finalize_with(fetcher)
    provider.set_state(task_id, TaskState.SUCCEEDED, video_url="https://a.klingai.com/v.mp4")
    fetcher.fail_with = ProviderError("HTTP 503", http_status=503, retryable=True, code="OUTPUT_DOWNLOAD_FAILED")
    outcome = finalize.on_poll("j-1")  # a CDN hiccup is not the job's end: the next poll copies again
    assert (outcome.status, outcome.terminal) == ("SUBMITTED", False)
    assert jobs.get("j-1").status == JobStatus.SUBMITTED and "finalize_lease_owner" not in jobs.get("j-1").extra
    fetcher.fail_with = ProviderError("too large", retryable=False, code="OUTPUT_TOO_LARGE")
    assert finalize.on_poll("j-1").status == "FAILED"
    assert jobs.get("j-1").error_code == "OUTPUT_TOO_LARGE"


def _submit_world_with_real_inspector(policy: UrlPolicy, network: FakeNetwork):
    from tests.unit.test_submit import World

    world = World()
    inspector = RangeMediaInspector(None, safe_client(policy, 5.0, network_backend=network))
    world.inspector.video = inspector.video  # the submit use case probes through the real inspector
    world.inspector.image = inspector.image
    return world


@pytest.mark.parametrize(("policy", "url", "code"), [
    (UrlPolicy(), "https://169.254.169.254/latest/meta-data/clip.mp4?X-Amz-Signature=topsecret",
     "URL_ADDRESS_NOT_ALLOWED"),
    (UrlPolicy(), "https://[::ffff:7f00:1]/clip.mp4?X-Amz-Signature=topsecret", "URL_ADDRESS_NOT_ALLOWED"),
    (UrlPolicy(("media.example.com",)), "https://cdn.other.example/clip.mp4?X-Amz-Signature=topsecret",
     "URL_HOST_NOT_ALLOWED"),
])
def test_a_refused_reference_rejects_the_job_before_the_provider_is_called(policy, url, code):
    import json

    from tests.unit.test_submit import BUCKET

    network = FakeNetwork(1)
    world = _submit_world_with_real_inspector(policy, network)
    body = json.dumps({"video_url": url, "prompt": "Relight @Video1"}).encode()
    world.storage.put(BUCKET, "jobs/ref.json", body)
    world.upload(key="jobs/ref.json", metadata={}, body=body)
    (job,) = world.jobs.items.values()
    assert (job.status, job.error_code) == (JobStatus.REJECTED, code)
    assert "topsecret" not in job.error_message and "Signature" not in job.error_message
    assert world.provider.requests == [] and network.connected == []


def test_the_inspector_turns_a_refusal_into_a_rejection_with_the_policys_code():
    network = FakeNetwork(1)
    inspector = RangeMediaInspector(None, safe_client(UrlPolicy(), 5.0, network_backend=network))
    with pytest.raises(MediaRejected) as info:
        inspector.image(MediaRef(url="https://user:hunter2@cdn.example/a.png?sig=s"))
    assert info.value.code == "URL_HAS_CREDENTIALS"
    assert "hunter2" not in info.value.message and "sig=" not in info.value.message
    assert network.connected == []
