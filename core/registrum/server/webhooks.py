"""The webhook delivery worker: a thread beside the server that sends what the store queues.

It never runs inside a request. Each round it asks the store to match new audit events to
hooks and claim the deliveries that are due (`Store.dispatch_webhooks`), posts each one on a
small pool of sender threads, and reports the outcome (`Store.record_delivery`), which
schedules the retries. A receiver that fails or hangs costs one sender at most `timeout`
seconds; nothing it does reaches the store's requests.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import requests

from registrum.server.settings import Settings
from registrum.store.webhooks import DueDelivery

log = logging.getLogger("registrum.server.webhooks")

MAX_ERROR = 500


def check_options(
    *, senders: int, poll_interval: float, retry_delay: float, max_attempts: int, timeout: float
) -> None:
    """Raises ValueError, naming the option, for worker settings that cannot work."""
    for value, what in ((poll_interval, "poll interval"), (timeout, "timeout")):
        if not value > 0:
            raise ValueError(f"the webhook {what} must be above 0 seconds, got {value}")
    if not retry_delay >= 0:
        raise ValueError(f"the webhook retry delay must not be negative, got {retry_delay}")
    if max_attempts < 1:
        raise ValueError(f"webhook max attempts must be at least 1, got {max_attempts}")
    if senders < 0:
        raise ValueError(f"webhook senders must be 0 (off) or more, got {senders}")


class WebhookWorker:
    """Delivers webhooks for `store` until stopped.

    Args:
        store: the service layer (`registrum.store.Store`).
        senders: deliveries sent at once, at most.
        poll_interval: seconds between looks for new events and due retries.
        retry_delay: seconds before the first retry; each further retry waits twice as long.
        max_attempts: attempts before a delivery is marked failed.
        timeout: seconds to wait for a receiver to connect, and then to answer.
    """

    def __init__(
        self,
        store: Any,
        *,
        senders: int = 4,
        poll_interval: float = 1.0,
        retry_delay: float = 10.0,
        max_attempts: int = 8,
        timeout: float = 10.0,
    ) -> None:
        check_options(
            senders=senders,
            poll_interval=poll_interval,
            retry_delay=retry_delay,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        if senders < 1:
            raise ValueError(f"a webhook worker needs at least 1 sender, got {senders}")
        self.store = store
        self.senders = senders
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.timeout = timeout
        # A claimed delivery is due again after its lease: long enough for any one send.
        self.lease = 2 * timeout + 60
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(senders, thread_name_prefix="registrum-webhook-send")
        self._thread = threading.Thread(target=self._run, name="registrum-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Looks for work now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stops claiming deliveries and waits for the sends in flight (each bounded by
        `timeout`); what is still pending is sent by the next worker to run."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)

    # -- the loop ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._round()
            except Exception as exc:  # the worker outlives a store that is briefly away
                log.warning("webhook dispatch failed, retrying: %s", exc)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _round(self) -> None:
        with self._lock:
            free = self.senders - self._in_flight
        due: list[DueDelivery] = self.store.dispatch_webhooks(limit=free, lease=self.lease)
        for delivery in due:
            with self._lock:
                self._in_flight += 1
            future = self._pool.submit(self._deliver, delivery)
            future.add_done_callback(self._done)

    def _done(self, _: Future[None]) -> None:
        with self._lock:
            self._in_flight -= 1
        self._wake.set()

    def _deliver(self, delivery: DueDelivery) -> None:
        status, error = self._post(delivery)
        try:
            self.store.record_delivery(
                delivery.id,
                status_code=status,
                error=error,
                max_attempts=self.max_attempts,
                base_delay=self.retry_delay,
            )
        except Exception as exc:  # the lease runs out and the delivery is sent again
            log.warning("could not record webhook delivery %s: %s", delivery.id, exc)

    def _post(self, delivery: DueDelivery) -> tuple[int | None, str | None]:
        """POSTs one delivery: (HTTP status, None) when the receiver answered, else
        (None, what went wrong)."""
        try:
            with requests.post(
                delivery.url,
                data=delivery.body(),
                headers=delivery.headers(),
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,
            ) as response:
                return response.status_code, None
        except requests.Timeout:
            return None, f"no answer within {self.timeout:g}s"
        except requests.ConnectionError as exc:
            return None, f"cannot connect: {exc}"[:MAX_ERROR]
        except Exception as exc:  # an odd URL or answer fails this attempt, not the worker
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR]


def start_worker(store: Any, settings: Settings) -> WebhookWorker | None:
    """The delivery worker for `store`, started; None when `settings` turn it off."""
    if settings.webhook_senders <= 0:
        return None
    worker = WebhookWorker(
        store,
        senders=settings.webhook_senders,
        poll_interval=settings.webhook_poll_interval,
        retry_delay=settings.webhook_retry_delay,
        max_attempts=settings.webhook_max_attempts,
        timeout=settings.webhook_timeout,
    )
    worker.start()
    return worker
