"""httpx's one-shot helpers for tests, with the process's one TLS context.

`httpx.get(url)` builds a client and, with it, a TLS context that loads certifi's bundle (~20 ms of
CPU) even for an http:// URL; the tests make hundreds of such calls to the local servers. These
pass `clipedit.adapters.tls.shared_ssl_context()` instead; everything else is httpx's own call.
"""

from __future__ import annotations

from functools import partial

import httpx
from clipedit.adapters.tls import shared_ssl_context

get = partial(httpx.get, verify=shared_ssl_context())
post = partial(httpx.post, verify=shared_ssl_context())
put = partial(httpx.put, verify=shared_ssl_context())
delete = partial(httpx.delete, verify=shared_ssl_context())
request = partial(httpx.request, verify=shared_ssl_context())
