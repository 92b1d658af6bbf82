"""The documentation cannot drift from the code: generated references are current, the site builds
with --strict (links, anchors, snippets), examples are included rather than copied, and the OpenAPI
document lists exactly the routes the status API serves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools import docs_refs
from tools.refs import routes

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TEXT_EXAMPLES = sorted(path for path in (ROOT / "examples").rglob("*")
                       if path.is_file() and path.suffix in {".json", ".csv", ".jsonl", ".yaml", ".yml", ".txt"})


def _pages() -> dict[Path, str]:
    return {path: path.read_text() for path in DOCS.rglob("*.md")}


def test_generated_references_are_up_to_date():
    stale = [str(path.relative_to(ROOT)) for path in docs_refs.stale_pages()]
    assert not stale, f"run `make docs-refs` and commit: {stale}"


def test_the_code_reference_lists_every_raised_code_and_only_described_ones_are_kept():
    from tools.refs import codes
    from tools.refs.code_scan import raised_codes

    text = (DOCS / "reference" / "codes.md").read_text()
    assert all(f"`{code}`" in text for code in raised_codes()), "a raised code is missing from codes.md"
    assert codes.stale_entries() == []


def test_site_builds_strict(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "codes" / "index.html").exists()
    assert (tmp_path / "site" / "openapi.yaml").exists()


@pytest.mark.parametrize("example", TEXT_EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_example_is_included_into_a_page_not_copied(example):
    relative = str(example.relative_to(ROOT))
    pages = _pages()
    assert any(f'--8<-- "{relative}"' in text for text in pages.values()), f"no page includes {relative} with --8<--"
    # A copy would show the file's distinctive lines without the include; a line of the file that is
    # long enough to be distinctive must not appear in any page's own text.
    distinctive = [line.strip() for line in example.read_text().splitlines() if len(line.strip()) >= 40]
    copied = [(str(page.relative_to(ROOT)), line) for page, text in pages.items() for line in distinctive
              if line in text]
    assert not copied, f"{relative} is copied into pages instead of included: {copied[:3]}"


def test_openapi_lists_exactly_the_routes_the_status_api_serves():
    served = routes.handler_routes()
    assert served, "no routes found in the status API handler"
    assert routes.openapi_routes() == served
    assert routes.template_routes() == served
    assert routes.local_gateway_routes() == served
