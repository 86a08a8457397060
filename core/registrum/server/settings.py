"""Server settings: passed to `create_app`, never read at import time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from registrum.server.oidc import OidcSettings, TrustRule


@dataclass(frozen=True)
class Settings:
    """What the server serves.

    Args:
        store_url: database URL (`sqlite:///...` or `postgresql+psycopg://...`);
            None for the embedded default under `REGISTRUM_HOME`.
        blobs: folder of the local blob backend, or `s3://BUCKET/PREFIX` for an
            S3-compatible bucket; None for the default folder beside the database.
        proxy_blobs: with an S3 bucket, whether blob bytes pass through the server (for
            clients that cannot reach the bucket); off, clients get presigned URLs.
        upgrade: whether a database at an older schema revision is upgraded on start; off,
            the server refuses it and names `registrum db upgrade` (an empty database is
            created either way).
        max_body_bytes: largest JSON request body; larger ones get 413.
            Blob uploads stream and are not limited by it.
        webhook_senders: webhook deliveries sent at once; 0 runs no delivery worker in
            this process (another server on the same database may deliver).
        webhook_poll_interval: seconds between the worker's looks for new events.
        webhook_retry_delay: seconds before a failed delivery's first retry; each further
            retry waits twice as long.
        webhook_max_attempts: attempts before a delivery is marked failed.
        webhook_timeout: seconds a receiver has to connect, and then to answer.
        allow_private_webhooks: whether webhooks may target loopback, private, link-local
            and other non-public addresses (receivers on your own network); off, they are
            refused when a hook is created and at every delivery.
        auth: whether every request needs an API token (`Authorization: Bearer ...`) and
            is checked against its user's roles; off, the server acts for anyone.
        admin_token: with `auth`, the first server admin's token when the store has no user
            yet (None: a fresh token is made and printed once).
        admin_name: the first server admin's user name.
        metrics_public: with `auth`, whether `/api/v1/metrics` may be read without a token
            (for a scraper on a private network); off, it needs a server admin's token.
        heartbeat_timeout: seconds without a heartbeat (or a metric point) after which a
            running run is marked crashed: its process is taken to be gone.
        partial_upload_max_age: seconds after which a partial blob upload that no writer
            touches any more (its server was killed mid-upload) is removed; the server
            sweeps at start and then every quarter of this (at most every 5 minutes).
        audit_anchor_interval: seconds between signings of the audit chain's head, recorded
            outside the database (see `registrum.store.governance.anchors`) when it moved;
            0 signs only on request and at every verification.
        gc_interval: seconds between garbage collections (`Store.collect_garbage`), run
            by one server across replicas; 0 (the default): none, `registrum gc` by hand.
        gc_older_than: the grace period of those collections, in seconds (default 7 days).
        oidc: with `auth`, the identity provider people sign in through (the UI's "Sign in
            with ..." button, `registrum login`); None: API tokens only.
        trust: with `auth`, the issuers whose ID tokens `/auth/token-exchange` turns into
            short-lived tokens of a service account (workload identity).
    """

    store_url: str | None = None
    blobs: Path | str | None = None
    proxy_blobs: bool = False
    upgrade: bool = False
    max_body_bytes: int = 64 * 1024 * 1024
    webhook_senders: int = 4
    webhook_poll_interval: float = 1.0
    webhook_retry_delay: float = 10.0
    webhook_max_attempts: int = 8
    webhook_timeout: float = 10.0
    allow_private_webhooks: bool = False
    auth: bool = False
    admin_token: str | None = None
    admin_name: str = "admin"
    metrics_public: bool = False
    heartbeat_timeout: float = 600.0
    partial_upload_max_age: float = 3600.0
    audit_anchor_interval: float = 60.0
    gc_interval: float = 0.0
    gc_older_than: float = 7 * 86400.0
    oidc: OidcSettings | None = None
    trust: tuple[TrustRule, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_timeout < float("inf"):
            raise ValueError(
                f"the heartbeat timeout must be above 0 seconds, got {self.heartbeat_timeout}"
            )

        if not 0 < self.partial_upload_max_age < float("inf"):
            raise ValueError(
                f"partial_upload_max_age must be above 0 seconds, got {self.partial_upload_max_age}"
            )

        if not 0 <= self.audit_anchor_interval < float("inf"):
            raise ValueError(
                "audit_anchor_interval must be 0 (off) or a number of seconds, "
                f"got {self.audit_anchor_interval}"
            )
        if not 0 <= self.gc_interval < float("inf"):
            raise ValueError(f"gc_interval must be 0 (off) or seconds, got {self.gc_interval}")
        if not 0 <= self.gc_older_than < float("inf"):
            raise ValueError(f"gc_older_than must be 0 seconds or more, got {self.gc_older_than}")
        if (self.oidc is not None or self.trust) and not self.auth:
            raise ValueError("an identity provider and trusted issuers need --auth")
        check_webhook_options(
            senders=self.webhook_senders,
            poll_interval=self.webhook_poll_interval,
            retry_delay=self.webhook_retry_delay,
            max_attempts=self.webhook_max_attempts,
            timeout=self.webhook_timeout,
        )


def check_webhook_options(
    *, senders: int, poll_interval: float, retry_delay: float, max_attempts: int, timeout: float
) -> None:
    """Raises ValueError, naming the option, for webhook worker settings that cannot work."""
    for value, what in ((poll_interval, "poll interval"), (timeout, "timeout")):
        if not value > 0:
            raise ValueError(f"the webhook {what} must be above 0 seconds, got {value}")
    if not retry_delay >= 0:
        raise ValueError(f"the webhook retry delay must not be negative, got {retry_delay}")
    if max_attempts < 1:
        raise ValueError(f"webhook max attempts must be at least 1, got {max_attempts}")
    if senders < 0:
        raise ValueError(f"webhook senders must be 0 (off) or more, got {senders}")
