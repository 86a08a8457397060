"""The webhook delivery worker: a thread beside the server that sends what the store queues.

It never runs inside a request. Each round it asks the store to match new audit events to
hooks and claim the deliveries that are due (`Store.dispatch_webhooks`), posts each one on a
small pool of sender threads, and reports the outcome (`Store.record_delivery`), which
schedules the retries. A receiver that fails or hangs costs one sender at most `timeout`
seconds; nothing it does reaches the store's requests.

Each send resolves the hook's host once, refuses it unless every address is public (or
private targets are allowed), and connects to one of those very addresses, sending the
URL's host as Host header and TLS server name: a name cannot pass the check and then
resolve elsewhere. Redirects are not followed, and no answer's body is read or kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

from registrum.server.settings import Settings, check_webhook_options
from registrum.store.governance.outbox import DueDelivery
from registrum.store.governance.targets import (
    Target,
    TargetRefused,
    TargetUnresolved,
    resolve_target,
)

log = logging.getLogger("registrum.server.webhooks")

MAX_ERROR = 500


def sign(secret: str, body: bytes) -> str:
    """The `X-Registrum-Signature` header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret` (constant-time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def delivery_headers(delivery: DueDelivery) -> dict[str, str]:
    """The headers a delivery is sent with, its signature among them."""
    return {
        "content-type": "application/json",
        "user-agent": "registrum-webhooks",
        "x-registrum-event": delivery.action,
        "x-registrum-delivery": str(delivery.id),
        "x-registrum-signature": sign(delivery.secret, delivery.body()),
    }


class WebhookWorker:
    """Delivers webhooks for `store` until stopped.

    Args:
        store: the service layer (`registrum.store.Store`).
        senders: deliveries sent at once, at most.
        poll_interval: seconds between looks for new events and due retries.
        retry_delay: seconds before the first retry; each further retry waits twice as long.
        max_attempts: attempts before a delivery is marked failed.
        timeout: seconds to wait for a receiver to connect, and then to answer.
        allow_private: whether hooks may reach loopback, private, link-local and other
            non-public addresses (`registrum server --allow-private-webhooks`).
        term: when this process took the lead, None while it does not lead
            (`Leadership.term`): only the leader of a cluster sends. Default: it leads from
            the worker's creation.
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
        allow_private: bool = False,
        term: Callable[[], float | None] | None = None,
    ) -> None:
        check_webhook_options(
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
        self.allow_private = allow_private
        # A claimed delivery is due again after its lease: long enough for any one send.
        self.lease = 2 * timeout + 60
        created = time.time()
        self._term_of = term or (lambda: created)
        self._term: float | None = None
        self._released = True
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(senders, thread_name_prefix="registrum-webhook-send")
        self._thread = threading.Thread(target=self._run, name="registrum-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def in_flight(self) -> int:
        """Deliveries being sent now."""
        with self._lock:
            return self._in_flight

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
        if not self._leads():
            return
        with self._lock:
            free = self.senders - self._in_flight
        due: list[DueDelivery] = self.store.dispatch_webhooks(limit=free, lease=self.lease)
        for delivery in due:
            with self._lock:
                self._in_flight += 1
            future = self._pool.submit(self._deliver, delivery)
            future.add_done_callback(self._done)

    def _leads(self) -> bool:
        """Whether this process sends now; in a new term, once the previous leader's sends
        must have ended (each takes at most twice the timeout), takes over the deliveries it
        claimed and never reported, instead of waiting out their leases."""
        term = self._term_of()
        if term is None:
            return False
        if term != self._term:
            self._term, self._released = term, False
        if not self._released and time.time() >= term + 2 * self.timeout + 1:
            released = self.store.release_webhook_claims(term)
            self._released = True
            if released:
                log.info("took over %d webhook delivery(ies) a previous leader left", released)
        return True

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
            target = resolve_target(delivery.url, allow_private=self.allow_private)
        except TargetRefused as exc:
            return None, exc.message[:MAX_ERROR]
        except TargetUnresolved as exc:
            return None, str(exc)[:MAX_ERROR]
        except Exception as exc:  # an odd URL fails this attempt, not the worker
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        return post_pinned(target, delivery, timeout=self.timeout)


def post_pinned(
    target: Target, delivery: DueDelivery, *, timeout: float
) -> tuple[int | None, str | None]:
    """POSTs `delivery` to the first of the target's checked addresses that accepts a
    connection: (HTTP status, None) when one answered, else (None, what went wrong)."""
    parts = urlsplit(delivery.url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    port = f":{parts.port}" if parts.port else ""
    shown = f"[{target.host}]" if ":" in target.host else target.host
    headers = {**delivery_headers(delivery), "host": shown + port}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    error = "no address to connect to"
    for address in target.addresses:
        pool = _pool(target, address, timeout)
        try:
            response = pool.urlopen(
                "POST",
                path,
                body=delivery.body(),
                headers=headers,
                retries=False,
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
            # The status is all that is kept; the body is never read.
            status = int(response.status)
            response.release_conn()
            return status, None
        except NewConnectionError as exc:  # this address refuses: try the next one
            error = f"cannot connect to {_where(target, address)}: {_reason(exc)}"
        except (ConnectTimeoutError, ReadTimeoutError):
            return None, f"no answer within {timeout:g}s"
        except Exception as exc:  # TLS, protocol: this attempt fails, not the worker
            return None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        finally:
            pool.close()
    return None, error[:MAX_ERROR]


def _pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to `address`; over https it verifies the certificate for, and
    sends as server name, the host the URL names, not the address."""
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme != "https":
        return urllib3.HTTPConnectionPool(address, target.port, timeout=limits, retries=False)
    return urllib3.HTTPSConnectionPool(
        address,
        target.port,
        timeout=limits,
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=_ca_bundle(),
        assert_hostname=target.host,
        server_hostname=target.host,
    )


def _ca_bundle() -> str:
    """The CA certificates `requests` would use: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, or
    certifi's."""
    return (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    )


def _where(target: Target, address: str) -> str:
    """`host at address:port`, or `address:port` when the URL names the address."""
    shown = f"[{address}]:{target.port}" if ":" in address else f"{address}:{target.port}"
    return shown if address == target.host else f"{target.host} at {shown}"


def _reason(exc: Exception) -> str:
    """The OS's words for a failed connection, without urllib3's object reprs."""
    cause = exc.__cause__ or exc.__context__
    return str(cause) if isinstance(cause, OSError) else str(exc)


def start_worker(
    store: Any, settings: Settings, *, term: Callable[[], float | None] | None = None
) -> WebhookWorker | None:
    """The delivery worker for `store`, started; None when `settings` turn it off. `term`
    says whether (since when) this process leads: see `WebhookWorker`."""
    if settings.webhook_senders <= 0:
        return None
    worker = WebhookWorker(
        store,
        senders=settings.webhook_senders,
        poll_interval=settings.webhook_poll_interval,
        retry_delay=settings.webhook_retry_delay,
        max_attempts=settings.webhook_max_attempts,
        timeout=settings.webhook_timeout,
        allow_private=settings.allow_private_webhooks,
        term=term,
    )
    worker.start()
    return worker
