"""Generate the docs' reference pages from the code, or check that they are up to date.

    python tools/docs_refs.py           write every page below (`make docs-refs`)
    python tools/docs_refs.py --check   exit 1 naming each page that differs from what the code says

The pages are committed so the site builds without running this, and ``tests/docs`` runs the check,
so ``make test`` fails while a page is stale: change the code, run ``make docs-refs``, commit both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in ("layers/clipedit/python", "layers/media/python", "cli", "."):
    # This checkout's code first, whatever an editable install in the virtualenv points at.
    sys.path.insert(0, str(ROOT / entry))

from tools.refs import cli_ref, codes, events_ref, template_ref  # noqa: E402

REFERENCE = ROOT / "docs" / "reference"
PAGES: dict[Path, Callable[[], str]] = {
    REFERENCE / "cli.md": cli_ref.render,
    REFERENCE / "template.md": template_ref.render,
    REFERENCE / "codes.md": codes.render,
    REFERENCE / "events.md": events_ref.render,
}


def stale_pages() -> list[Path]:
    return [path for path, render in PAGES.items() if not path.exists() or path.read_text() != render()]


def write_pages() -> list[Path]:
    written = []
    for path, render in PAGES.items():
        text = render()
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a page is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run `make docs-refs`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_pages():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
