"""Which URLs we may fetch when we did not build them ourselves (SSRF guard), pure stdlib.

Two kinds of URL reach our HTTP clients from outside: the provider's result video (finalize copies
it into S3) and the https references users put in manifests (the submit function probes them with
ranged reads). Either could point at the function's own network: the Lambda metadata/credentials
endpoints, a VPC address, localhost. A `UrlPolicy` says what is allowed:

- ``check_url`` before a request: the scheme (https only unless ``allow_http``), no
  ``user:password@``, the host on the allowlist (exact names or ``*.suffix`` wildcards; an empty
  allowlist means any host), and an IP-literal host checked like a resolved address;
- ``check_address`` on every address a host resolves to, before connecting: loopback, private,
  link-local (169.254.169.254 included), CGNAT, multicast, reserved, unspecified, documentation
  ranges and IPv4 addresses embedded in IPv6 (mapped, NAT64, 6to4) are refused unless
  ``allow_private`` (only the local stack, whose emulator serves http://127.0.0.1).

Errors are `UrlRejected` with a stable code; messages name the host, never the path's query string
(presigned and anti-leech URLs carry signatures there).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from clipedit.domain.errors import UrlRejected

__all__ = [
    "KLING_RESULT_HOSTS",
    "FAL_RESULT_HOSTS",
    "RESULT_HOSTS",
    "UrlPolicy",
    "URL_SCHEME_NOT_ALLOWED",
    "URL_HOST_NOT_ALLOWED",
    "URL_HAS_CREDENTIALS",
    "URL_ADDRESS_NOT_ALLOWED",
    "URL_TOO_MANY_REDIRECTS",
    "URL_INVALID",
    "url_for_message",
]

URL_SCHEME_NOT_ALLOWED = "URL_SCHEME_NOT_ALLOWED"
URL_HOST_NOT_ALLOWED = "URL_HOST_NOT_ALLOWED"
URL_HAS_CREDENTIALS = "URL_HAS_CREDENTIALS"
URL_ADDRESS_NOT_ALLOWED = "URL_ADDRESS_NOT_ALLOWED"
URL_TOO_MANY_REDIRECTS = "URL_TOO_MANY_REDIRECTS"
URL_INVALID = "URL_INVALID"

# Where Kling's result videos (task_result.videos[].url / watermark_url, "anti-leech" CDN URLs) are
# served from. Every entry is a domain of Kuaishou, Kling's operator; checked 2026 against Kling's
# API reference and public client code:
# - *.klingai.com: p1-/p2-/s15-/v15-kling.klingai.com (paths /bs2/upload-ylab-stunt..., /kcdn/...)
#   in Kling's own request examples, in client code downloading results, and in
#   shared/reference/provider-apis.md 1.5 ("*-kling.klingai.com");
# - *.kwimgs.com: p1.a.kwimgs.com is the result video URL in the Omni-Video "Query Task" response
#   example of Kling's API reference (p2.a.kwimgs.com for images); other integrations allowlist it;
# - *.inkwai.com: h1.inkwai.com (provider-apis.md 1.5; the image-result example of Kling's
#   reference) and h2.inkwai.com (input examples in the same reference);
# - *.kwaicdn.com: Kuaishou's video CDN (v1/v2/v4-vod.kwaicdn.com); allowlisted for Kling results
#   by other Kling integrations, no Kling result URL seen on it first-hand;
# - *.kling.ai, *.kwai.net: Kling's global-brand domain and Kuaishou's international CDN
#   (s1/s16.kwai.net). No result URL seen on them yet; kept so that a CDN move within Kuaishou's
#   own domains does not fail every job. The address check applies to every host regardless.
# Stacks that see another host set the ResultHostAllowlist parameter (RESULT_HOST_ALLOWLIST).
KLING_RESULT_HOSTS: tuple[str, ...] = (
    "*.klingai.com",
    "*.kling.ai",
    "*.inkwai.com",
    "*.kwimgs.com",
    "*.kwai.net",
    "*.kwaicdn.com",
)
# fal serves results from its media CDN: fal.media and v2/v3.fal.media (provider-apis.md 2.3/2.6).
FAL_RESULT_HOSTS: tuple[str, ...] = ("fal.media", "*.fal.media")
RESULT_HOSTS: tuple[str, ...] = KLING_RESULT_HOSTS + FAL_RESULT_HOSTS  # every provider a stack may use

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

_V4_BLOCKS: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), what)
    for net, what in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address (instance metadata lives there)"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)
_V6_BLOCKS: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), what)
    for net, what in (
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("100::/64", "a discard address"),
        ("2001:db8::/32", "a documentation address"),
        ("fc00::/7", "a private (unique local) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _non_public(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 carried inside IPv6 reaches that IPv4 address: judge the IPv4 address.
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = _non_public(embedded)
            return f"{reason} (as {address})" if reason else None
        if address.sixtofour is not None and _non_public(address.sixtofour):
            return f"{_non_public(address.sixtofour)} (6to4 {address})"
        blocks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = _V6_BLOCKS
    else:
        blocks = _V4_BLOCKS
    for network, what in blocks:
        if address in network:
            return what
    # Whatever else the stdlib knows as special (IETF ranges, Teredo, ...).
    if (address.is_loopback or address.is_link_local or address.is_multicast or address.is_private
            or address.is_reserved or address.is_unspecified or not address.is_global):
        return "a non-public address"
    return None


def _normalize_host(host: str) -> str:
    """Lower case, no trailing dot, IDNA (punycode) for non-ASCII names; IPv6 without brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host and not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return host


def _valid_name(host: str) -> bool:
    return 0 < len(host) <= 253 and all(_LABEL.match(label) for label in host.split("."))


def url_for_message(url: str) -> str:
    """``scheme://host[:port]/path`` without credentials, query or fragment: safe to quote."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparseable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True)
class UrlPolicy:
    """What may be fetched. ``allowed_hosts``: exact host names (or IP literals) and ``*.suffix``
    wildcards (``*.klingai.com`` matches ``a.klingai.com`` and ``x.y.klingai.com``, not
    ``klingai.com`` itself); empty = any host (the address check still applies)."""

    allowed_hosts: tuple[str, ...] = ()
    allow_http: bool = False
    allow_private: bool = False

    def __post_init__(self) -> None:
        normalized: list[str] = []
        for pattern in self.allowed_hosts:
            entry = pattern.strip().lower().rstrip(".")
            if entry.startswith("*."):
                suffix = _normalize_host(entry[2:])
                if "." not in suffix or not _valid_name(suffix):
                    raise ValueError(f"{pattern!r}: a wildcard needs a domain with a dot after '*.', "
                                     "e.g. *.klingai.com")
                normalized.append(f"*.{suffix}")
                continue
            host = _normalize_host(entry)
            if not (_parse_ip(host) or _valid_name(host)):
                raise ValueError(f"{pattern!r} is not a host name, an IP address or a *.domain wildcard")
            normalized.append(host)
        object.__setattr__(self, "allowed_hosts", tuple(normalized))

    # --- hosts ----------------------------------------------------------------------------------

    def host_allowed(self, host: str) -> bool:
        host = _normalize_host(host)
        if not host:
            return False
        if not self.allowed_hosts:
            return True
        for pattern in self.allowed_hosts:
            if pattern.startswith("*."):
                suffix = pattern[1:]  # ".klingai.com"
                if host.endswith(suffix) and len(host) > len(suffix):
                    return True
            elif host == pattern:
                return True
        return False

    def check_url(self, url: str) -> None:
        """Raise `UrlRejected` unless ``url`` may be requested (addresses are checked at connect)."""
        where = url_for_message(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise UrlRejected(f"{where} is not a valid URL", code=URL_INVALID) from None
        scheme = parts.scheme.lower()
        if scheme != "https" and not (self.allow_http and scheme == "http"):
            wanted = "https:// (or http://)" if self.allow_http else "https://"
            raise UrlRejected(f"{where}: only {wanted} URLs are fetched", code=URL_SCHEME_NOT_ALLOWED)
        if "@" in parts.netloc:
            raise UrlRejected(f"{where}: URLs with credentials (user:password@) are not fetched",
                              code=URL_HAS_CREDENTIALS)
        host = _normalize_host(parts.hostname or "")
        literal = _parse_ip(host)
        if not host or not (literal or _valid_name(host)):
            raise UrlRejected(f"{where}: no valid host name", code=URL_HOST_NOT_ALLOWED)
        if not self.host_allowed(host):
            raise UrlRejected(
                f"{where}: host {host} is not allowed (allowed: {', '.join(self.allowed_hosts)})",
                code=URL_HOST_NOT_ALLOWED,
            )
        if literal is not None:
            self.check_address(literal, host=host)

    # --- addresses ------------------------------------------------------------------------------

    def check_address(self, ip: str | IPAddress, *, host: str | None = None) -> None:
        """Raise `UrlRejected` unless a connection to ``ip`` is allowed. ``host`` (the name that
        resolved to it) is named in the message instead of the address, so a refusal does not
        tell a user what an internal name resolves to."""
        address = ip if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else _parse_ip(str(ip))
        if address is None:
            raise UrlRejected(f"{host or ip!s}: {ip!s} is not an IP address", code=URL_ADDRESS_NOT_ALLOWED)
        if self.allow_private:
            return
        reason = _non_public(address)
        if reason is None:
            return
        if host is not None and _parse_ip(host) is None:
            message = f"host {host} resolves to a non-public address; refusing to connect"
        else:
            message = f"{address} is {reason}; refusing to connect"
        raise UrlRejected(message, code=URL_ADDRESS_NOT_ALLOWED)
