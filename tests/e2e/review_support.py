"""What the review page's browser tests share: the page served from a thread against the session's
local stack, and one headless Debian Chromium driven by Selenium. Without Chromium the tests are
skipped with a reason that the test summary shows in capitals (and tests/conftest.py repeats)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

CHROMIUM = os.environ.get("CLIPEDIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MISSING_REASON = ("CHROMIUM MISSING: the review page's browser tests did not run; install Debian's browser with "
                  "`apt-get install -y chromium chromium-driver` (.ci/run does it when /usr/bin/chromium is missing)")
# The docs' screenshots are rewritten only when asked (CLIPEDIT_UPDATE_SCREENSHOTS=1), so a test run
# leaves the checkout clean; otherwise they are still taken, into a temporary folder.
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
IMAGES = DOCS_IMAGES if os.environ.get("CLIPEDIT_UPDATE_SCREENSHOTS") == "1" else Path(
    tempfile.gettempdir()) / "clipedit-review-screenshots"


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


class ServedReviewApp:
    """The real app (uvicorn) on a pre-bound loopback port, in a thread, for one test module."""

    def __init__(self, backend, *, token: str | None = None) -> None:
        from clipedit_cli.review.security import Guard
        from clipedit_cli.review.server import ReviewApp, bind, caller_arn, server_for

        self.reviewer = caller_arn(backend)
        self.app = ReviewApp(backend, reviewer=self.reviewer, guard=Guard(token))
        self._socket = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = server_for(self.app.build())
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> "ServedReviewApp":
        self._thread.start()  # the socket already listens: requests queue until uvicorn accepts them
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


def headless_chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio",
                     "--autoplay-policy=no-user-gesture-required", "--window-size=1180,860", "--disable-gpu"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def save_screenshot(driver, name: str, *, max_width: int = 760) -> Path:
    """A small PNG for the docs: the browser's screenshot, scaled down with PyAV (no Pillow here)."""
    import io

    import av

    png = driver.get_screenshot_as_png()
    with av.open(io.BytesIO(png), format="png_pipe") as source:
        frame = next(source.decode(video=0))
    width = min(max_width, frame.width)
    height = round(frame.height * width / frame.width)
    IMAGES.mkdir(parents=True, exist_ok=True)
    target = IMAGES / name
    with av.open(str(target), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for packet in stream.encode(frame.reformat(width=width, height=height, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert target.stat().st_size > 1000, f"{target} is not a screenshot"
    return target
