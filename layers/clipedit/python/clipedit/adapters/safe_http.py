"""An httpx client that only reaches what a `UrlPolicy` allows: SSRF-safe fetching of URLs we did
not build ourselves (provider results, user references).

Three layers, each enforcing the policy on its own:

- `PolicyNetworkBackend` (httpcore): resolves the host once, checks *every* address it resolves to
  and then connects to one of those checked addresses (an IP, never the name again). A DNS answer
  that changes between the check and the connect (rebinding) therefore cannot reach a private
  address. TLS is started afterwards by httpcore with the original host name, so SNI, certificate
  verification and the Host header are those of the URL.
- `PolicyTransport` (httpx): checks each request's URL (scheme, host allowlist, credentials)
  before it is sent, whoever sends it.
- `SafeClient` (httpx.Client): never lets httpx follow redirects; follows at most
  ``max_redirects`` itself, checking every hop before requesting it. Environment proxies and
  .netrc are ignored (``trust_env=False``): a proxy would connect on our behalf, unchecked.

Refusals are `UrlRejected` (codes in ``clipedit.domain.url_policy``); network failures stay
httpx errors, so callers keep classifying them as retryable.
"""

from __future__ import annotations

import socket
import ssl
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx

from clipedit.domain.errors import UrlRejected
from clipedit.domain.url_policy import URL_ADDRESS_NOT_ALLOWED, URL_TOO_MANY_REDIRECTS, UrlPolicy, url_for_message

__all__ = ["MAX_REDIRECTS", "PolicyNetworkBackend", "PolicyTransport", "SafeClient", "safe_client", "system_resolver"]

MAX_REDIRECTS = 3

Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the host's addresses as strings, in the order to try them."""


def system_resolver(host: str, port: int) -> list[str]:
    addresses: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class PolicyNetworkBackend(httpcore.NetworkBackend):
    """Resolve, check every address, connect to a checked address (``backend`` does the connect)."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver | None = None,
                 backend: httpcore.NetworkBackend | None = None) -> None:
        self._policy = policy
        self._resolve = resolver or system_resolver
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = list(self._resolve(host, port))
        except (OSError, UnicodeError) as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        for address in addresses:  # all of them: a name with one private address is refused
            self._policy.check_address(address, host=host)
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._backend.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                 socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise UrlRejected("unix sockets are never connected to", code=URL_ADDRESS_NOT_ALLOWED)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class PolicyTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool built on `PolicyNetworkBackend`; every request's
    URL is checked before it is sent (redirect hops included, whoever follows them)."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.NetworkBackend | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        retries: int = 0,
    ) -> None:
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, trust_env=False, limits=limits, retries=retries)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):  # pragma: no cover
            raise RuntimeError("httpx.HTTPTransport changed: its connection pool cannot be guarded")
        self._policy = policy
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=retries,
            network_backend=PolicyNetworkBackend(policy, resolver, network_backend),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_url(str(request.url))
        return super().handle_request(request)


class SafeClient(httpx.Client):
    """An httpx.Client whose every request, and every redirect hop, passes ``policy``."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: httpx.Timeout | float | None = 30.0,
        max_redirects: int = MAX_REDIRECTS,
        resolver: Resolver | None = None,
        network_backend: httpcore.NetworkBackend | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        transport = PolicyTransport(policy, resolver=resolver, network_backend=network_backend, verify=verify)
        super().__init__(timeout=timeout, transport=transport, follow_redirects=False, trust_env=False,
                         max_redirects=max_redirects)
        self.policy = policy
        self._max_hops = max_redirects

    def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: typing.Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: typing.Any = httpx.USE_CLIENT_DEFAULT,  # ignored: we follow, checked
    ) -> httpx.Response:
        self.policy.check_url(str(request.url))
        hops = 0
        while True:
            response = super().send(request, stream=True, auth=auth, follow_redirects=False)
            next_request = response.next_request
            if next_request is None:
                break
            response.close()
            if hops >= self._max_hops:
                raise UrlRejected(
                    f"{url_for_message(str(request.url))} redirects more than {self._max_hops} times",
                    code=URL_TOO_MANY_REDIRECTS,
                )
            self.policy.check_url(str(next_request.url))
            request, hops = next_request, hops + 1
        if not stream:
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return response


def safe_client(
    policy: UrlPolicy,
    timeout: httpx.Timeout | dict[str, float] | float | None,
    *,
    max_redirects: int = MAX_REDIRECTS,
    resolver: Resolver | None = None,
    network_backend: httpcore.NetworkBackend | None = None,
) -> SafeClient:
    """The client for URLs we did not build. ``resolver``/``network_backend`` are for tests."""
    from clipedit.adapters.tls import shared_ssl_context

    if isinstance(timeout, dict):
        timeout = httpx.Timeout(**timeout)
    return SafeClient(policy, timeout=timeout, max_redirects=max_redirects, resolver=resolver,
                      network_backend=network_backend, verify=shared_ssl_context())
