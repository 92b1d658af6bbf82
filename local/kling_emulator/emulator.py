"""`KlingEmulator`: one account's emulated Kling API, put together from the parts in this package,
with its start/stop and the thread-safe observability the tests use; `main` runs it standalone."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from clipedit.adapters.tls import shared_ssl_context

from local.kling_emulator.callbacks import CALLBACK_TIMEOUT_SECONDS, CallbackDelivery
from local.kling_emulator.elements import ElementLibrary, _Element
from local.kling_emulator.faults import Faults
from local.kling_emulator.http_api import HttpSurface, _Server
from local.kling_emulator.rendering import RENDER_WORKERS, Rendering, downloads_client
from local.kling_emulator.settings import EmulatorSettings
from local.kling_emulator.tasks import TaskLifecycle, _Task

log = logging.getLogger("local.kling_emulator")  # one logger for the whole emulator, as before the split


def stop_workers(render_pool: ThreadPoolExecutor, threads: Iterable[threading.Thread],
                 callback_pool: ThreadPoolExecutor) -> None:
    """Cancel queued renders so the task threads waiting on them return, wait for those threads
    (15 s at most in all), then let in-flight callbacks finish."""
    render_pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 15
    for thread in list(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
    render_pool.shutdown(wait=True)
    callback_pool.shutdown(wait=True, cancel_futures=True)


class KlingEmulator(HttpSurface, TaskLifecycle, ElementLibrary, Rendering, CallbackDelivery, Faults):
    """Thread-based HTTP emulator of Kling's Omni-Video API and element library for one account (AK/SK pair).

    `settings` may be replaced at runtime (e.g. `dataclasses.replace`): every knob is read when the
    decision is made, except `seed`, which only seeds the RNG at construction.

    Observability for tests: `tasks()`, `elements()`, `stats()`, `wait_for_status()` (video tasks and
    element tasks alike: their ids never collide) and `wait_for_callbacks()` are thread-safe.
    `stats()` counts: `creates_accepted` (video tasks); `element_creates_accepted` and
    `elements_created` (element tasks accepted, and those that succeeded with an element_id);
    `rejected_by_code` {code: count} for every error answer (including injected 5000s);
    `max_concurrent_observed` (tasks holding a slot at once);
    `callbacks_sent` (POST attempts, duplicates included), `callbacks_failed` (attempts that raised
    or got a non-2xx answer), `callbacks_dropped` and `callbacks_duplicated` (injected faults);
    `responses_lost` (creates that succeeded but were answered 504, the `LOST_RESPONSE_RATE` knob).
    """

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        settings: EmulatorSettings | None = None,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("access_key and secret_key must be non-empty")
        self._access_key, self._secret_key, self._api_key = access_key, secret_key, api_key
        self.settings = settings or EmulatorSettings()
        self._address = (host, port)
        self._rng = random.Random(self.settings.seed)

        self._cond = threading.Condition()  # guards everything below; notified on every task change
        self._tasks: dict[str, _Task] = {}
        self._by_external: dict[str, str] = {}
        self._order: list[str] = []
        self._elements: dict[str, _Element] = {}  # by task_id
        self._elements_by_external: dict[str, str] = {}
        self._element_order: list[str] = []
        self._elements_by_id: dict[int, _Element] = {}  # succeeded elements, by element_id
        self._active = 0
        self._callbacks_pending = 0  # queued or in flight
        self._id_counter = 0
        self._stats: dict[str, Any] = {
            "creates_accepted": 0,
            "element_creates_accepted": 0,
            "elements_created": 0,
            "rejected_by_code": {},
            "max_concurrent_observed": 0,
            "callbacks_sent": 0,
            "callbacks_dropped": 0,
            "callbacks_duplicated": 0,
            "callbacks_failed": 0,
            "responses_lost": 0,
        }

        self._stop = threading.Event()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._task_threads: list[threading.Thread] = []
        self._render_pool = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="kling-render")
        self._callback_pool = ThreadPoolExecutor(4, thread_name_prefix="kling-callback")
        # The process's one TLS context: building one per client cost ~20 ms each (emulators start per test).
        self._http = httpx.Client(timeout=CALLBACK_TIMEOUT_SECONDS, verify=shared_ssl_context())
        # One pool for every input and image download: a client per download built a TLS context
        # and a connection each time (2 % of a chaos run's samples).
        self._downloads = downloads_client()
        self._work_dir: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> KlingEmulator:
        if self._server is not None or self._stop.is_set():
            raise RuntimeError("emulator already started (it cannot be restarted)")
        self._work_dir = Path(tempfile.mkdtemp(prefix="kling-emulator-"))
        self._server = _Server(self._address, self)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kling-http", daemon=True
        )
        self._serve_thread.start()
        log.info("Kling emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()  # interrupts processing waits and suppresses further callbacks
        if self._server is None:  # never started: just release the pools
            self._render_pool.shutdown(wait=False)
            self._callback_pool.shutdown(wait=False)
            self._http.close()
            self._downloads.close()
            return
        self._server.shutdown()
        self._server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join()
        stop_workers(self._render_pool, self._task_threads, self._callback_pool)
        self._http.close()
        self._downloads.close()
        with self._cond:
            self._cond.notify_all()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> KlingEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- observability ------------------------------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        with self._cond:
            return [self._tasks[task_id].snapshot() for task_id in self._order]

    def elements(self) -> list[dict[str, Any]]:
        """Element-creation tasks, oldest first: status, the image URLs (or base64) sent, element_id."""
        with self._cond:
            return [self._elements[task_id].snapshot() for task_id in self._element_order]

    def stats(self) -> dict[str, Any]:
        with self._cond:
            snapshot = dict(self._stats)
            snapshot["rejected_by_code"] = dict(self._stats["rejected_by_code"])
            snapshot["active_tasks"] = self._active
            return snapshot

    def wait_for_status(self, task_id: str, statuses: str | Iterable[str], timeout: float = 10.0) -> dict[str, Any]:
        """Block until the task (video or element) is in one of `statuses`; returns its snapshot or
        raises TimeoutError."""
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)
        with self._cond:
            task: _Task | _Element | None = self._tasks.get(task_id) or self._elements.get(task_id)
            if task is None:
                raise KeyError(f"unknown task {task_id}")
            if not self._cond.wait_for(lambda: task.status in wanted, timeout):
                raise TimeoutError(f"task {task_id} is {task.status!r}, not {sorted(wanted)} after {timeout}s")
            return task.snapshot()

    def wait_for_callbacks(self, timeout: float = 10.0) -> dict[str, Any]:
        """Block until no callback is queued or in flight; returns `stats()` or raises TimeoutError.

        Only meaningful once the tasks of interest have reached the status whose callback you expect.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._callbacks_pending == 0, timeout):
                raise TimeoutError(f"{self._callbacks_pending} callback(s) still pending after {timeout}s")
        return self.stats()


# ---------------------------------------------------------------------------------------------
# CLI: python -m local.kling_emulator


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = os.environ
    emulator = KlingEmulator(
        env.get("CLIPEDIT_EMULATOR_ACCESS_KEY", "local-access-key"),
        env.get("CLIPEDIT_EMULATOR_SECRET_KEY", "local-secret-key"),
        EmulatorSettings.from_env(env),
        api_key=env.get("CLIPEDIT_EMULATOR_API_KEY") or None,
        host=env.get("CLIPEDIT_EMULATOR_HOST", "127.0.0.1"),
        port=int(env.get("CLIPEDIT_EMULATOR_PORT", "0")),
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with emulator:
        print(emulator.base_url, flush=True)
        done.wait()
