"""Callbacks (section 1.7): one POST per status change to the task's `callback_url`, in status
order per task, tasks in parallel; the drop/duplicate knobs apply here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx

from local.kling_emulator.faults import callback_copies

if TYPE_CHECKING:
    from local.kling_emulator.elements import _Element
    from local.kling_emulator.tasks import _Task

log = logging.getLogger("local.kling_emulator")  # one logger for the whole emulator, as before the split

CALLBACK_TIMEOUT_SECONDS = 10.0


class CallbackDelivery:
    """Queues and sends callbacks on the emulator's callback pool."""

    def _queue_callback_locked(self, task: _Task | _Element) -> None:
        if task.callback_url is None:
            return
        copies = callback_copies(self._rng, self.settings, self._stats)
        if not copies:
            return
        body = task.callback_body()
        task.callback_queue.extend([body] * copies)
        self._callbacks_pending += copies
        # One drain job per task at a time keeps that task's callbacks in status order,
        # while different tasks' callbacks go out in parallel.
        if not task.callback_draining:
            task.callback_draining = True
            self._callback_pool.submit(self._drain_callbacks, task)

    def _drain_callbacks(self, task: _Task | _Element) -> None:
        while True:
            with self._cond:
                if not task.callback_queue or self._stop.is_set():
                    self._callbacks_pending -= len(task.callback_queue)
                    task.callback_queue.clear()
                    task.callback_draining = False
                    self._cond.notify_all()
                    return
                body = task.callback_queue.popleft()
                self._stats["callbacks_sent"] += 1
            assert task.callback_url is not None
            try:
                resp = self._http.post(task.callback_url, json=body)
                ok = resp.is_success
            except httpx.HTTPError as exc:
                log.info("callback to %s failed: %s", task.callback_url, exc)
                ok = False
            with self._cond:
                if not ok:
                    self._stats["callbacks_failed"] += 1
                self._callbacks_pending -= 1
                self._cond.notify_all()
