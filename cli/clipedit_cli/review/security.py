"""What keeps the review page private: loopback by default, an access token when it is not, and a
CSRF token on every POST (a page on another site cannot make the browser approve or launch)."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

from clipedit_cli.errors import CliError, Exit

TOKEN_COOKIE = "clipedit_review_token"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve other machines without a token: the page can approve, spend and download."""
    if not is_loopback(host) and not token:
        raise CliError(f"--host {host} makes the review page reachable from other machines: also pass --token "
                       "SECRET (at least 16 characters), which every request must then carry", Exit.USAGE)
    if token is not None and len(token) < 16:
        raise CliError("--token must be at least 16 characters", Exit.USAGE)


@dataclass
class Guard:
    token: str | None = None
    csrf_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def csrf_token(self) -> str:
        return self.csrf_secret

    def token_ok(self, request: Request) -> bool:
        if not self.token:
            return True
        offered = (request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token")
                   or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token.encode())

    def csrf_problem(self, request: Request, form_value: str | None) -> str | None:
        """Why a POST is refused, or None. The token comes from the form (or a header for scripts);
        a cross-site Origin is refused even with it."""
        origin = request.headers.get("origin")
        if origin and origin != "null":
            if urlsplit(origin).netloc != request.headers.get("host", ""):
                return f"the request comes from another site ({origin})"
        offered = form_value or request.headers.get(CSRF_HEADER)
        if not offered:
            return "the form carries no CSRF token: reload the page and try again"
        if not hmac.compare_digest(offered.encode(), self.csrf_secret.encode()):
            return "the form's CSRF token is not this server's: reload the page and try again"
        return None
