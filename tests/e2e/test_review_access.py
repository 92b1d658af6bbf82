"""Who can reach the review page: loopback by default; any other address only with --token, which
every request must then carry (once in the URL, then as an HttpOnly cookie). No browser needed."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.review_support import ServedReviewApp
from tests.e2e.test_cli import cli  # noqa: F401  (the module-scoped fixture)
from tests import web

TOKEN = "a-long-review-token-0123456789"


@pytest.fixture(scope="module")
def backend(stack):
    from clipedit_cli.backend import Backend
    from clipedit_cli.target import resolve_target

    return Backend(resolve_target(local_file=str(stack.options.state_dir / "local.json")))


@pytest.mark.parametrize("args, fragment", [
    (["--host", "0.0.0.0"], "also pass --token"),
    (["--host", "192.168.1.20", "--token", "short"], "at least 16 characters"),
])
def test_a_reachable_address_needs_a_token(cli, args, fragment):  # noqa: F811
    code, out, err = cli("review", "--no-browser", *args, timeout=30)
    assert code == 2 and fragment in err and out == ""


def test_with_a_token_every_request_carries_it(backend):
    with ServedReviewApp(backend, token=TOKEN) as served:
        refused = web.get(served.url + "/", timeout=30)
        assert refused.status_code == 403 and "access token" in refused.text
        assert web.get(served.url + "/?token=wrong-token-wrong-token", timeout=30).status_code == 403
        with httpx.Client(base_url=served.url, timeout=30, follow_redirects=True) as browser_like:
            page = browser_like.get(f"/?token={TOKEN}")
            assert page.status_code == 200 and str(page.url) == served.url + "/"  # the token left the address bar
            assert "token=" not in page.text
            assert browser_like.get("/plan").status_code == 200  # the HttpOnly cookie carries it from now on
        assert web.get(served.url + "/plan", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30).status_code == 200
