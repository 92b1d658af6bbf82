"""HTTP plumbing every provider adapter needs, written once: send a request, turn network failures
into retryable ``ProviderError``s, read a JSON answer.

What an answer *means* (which codes are retryable, what a user is told) stays in each adapter's
own table; this module knows nothing about Kling or fal.
"""

from __future__ import annotations

from typing import Any

import httpx

from clipedit.domain.errors import ProviderError

# Provider APIs answer create/query in well under a second; generous read time covers slow days.
API_TIMEOUT = {"connect": 5.0, "read": 20.0, "write": 20.0, "pool": 5.0}


def api_client() -> httpx.Client:
    """One client per process for provider API calls (connection reuse; redirects are not followed:
    an API answering with a redirect is an error, not a hint)."""
    from clipedit.adapters.tls import shared_ssl_context

    return httpx.Client(timeout=httpx.Timeout(**API_TIMEOUT), follow_redirects=False, verify=shared_ssl_context())


def send(client: httpx.Client, provider: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The response, whatever its status; a timeout or a connection failure is a retryable
    ProviderError naming the provider (never the URL: it may carry ids or tokens)."""
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException as error:
        raise ProviderError(f"{provider} did not answer {method} in time", retryable=True,
                            code="PROVIDER_TIMEOUT") from error
    except httpx.TransportError as error:
        raise ProviderError(f"cannot reach {provider}: {type(error).__name__}", retryable=True,
                            code="PROVIDER_UNREACHABLE") from error


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON body, or None when there is none (or it is not JSON)."""
    try:
        return response.json()
    except ValueError:
        return None
