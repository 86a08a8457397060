"""Idempotency keys: a write retried with its first attempt's key returns the first answer
instead of being made twice.

A caller names each logical write with a key of its own (the HTTP client a UUID per call, a
spooled registration the one it was spooled with; over HTTP the `Idempotency-Key` header).
The store keeps, per principal and key, the operation, a hash of the request and the answer.
The key is inserted first in the transaction that makes the write, so the write and its
answer are committed together or not at all, and a concurrent request with the same key waits
on the key's primary key (PostgreSQL) or on the write lock (SQLite), then finds the answer
instead of writing. The same key with another request is refused (`IdempotencyKeyReused`);
another user's key never matches. Keys expire after `KEY_TTL`; expired ones are swept by the
writes that use keys, at most once per `SWEEP_EVERY` per process.

Only answers of writes that were made are kept: a write that fails changes nothing, and its
retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update

from registrum import validation as v
from registrum.errors import IdempotencyKeyReused
from registrum.store import schema as t
from registrum.store._base import StoreBase, now
from registrum.store.acting import current_principal

KEY_TTL = 24 * 3600.0
SWEEP_EVERY = 600.0


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """One keyed write: whose key, which key, which operation, and its request's hash."""

    principal: str
    key: str
    operation: str
    request_hash: str

    def follow_up(self, step: str, operation: str, request: Any) -> Claim:
        """The claim of a write a keyed write makes in a transaction of its own (a promotion
        request that a registration opens): retried, it is made once too."""
        return Claim(
            self.principal,
            f"{self.key}#{_digest(step)[:16]}",
            operation,
            _digest([operation, request]),
        )


@dataclass(frozen=True)
class Answer:
    """What a keyed write answered the first time: its status and its body (JSON)."""

    status: int
    body: Any


def claim(key: Any, operation: str, request: Any) -> Claim | None:
    """The claim of a write with `key` (None: no key, no claim). `request` is what the write
    was asked to do, in its checked form: the same request hashes the same."""
    checked = v.idempotency_key(key)
    if checked is None:
        return None
    principal = current_principal()
    scope = "-" if principal is None else f"user:{principal.user_id}"
    return Claim(scope, checked, operation, _digest([operation, request]))


class IdempotencyMixin(StoreBase):
    def _recall(self, conn: Connection, claim: Claim | None) -> Answer | None:
        """Takes `claim`'s key for this transaction, or returns the answer stored under it.

        Call it first in the write's transaction: a concurrent write with the same key then
        waits here until the first commits (or rolls back, and this one writes)."""
        if claim is None:
            return None
        k = t.idempotency_keys.c
        stamp = now()
        self._sweep_keys(conn, stamp)
        mine = (k.principal == claim.principal, k.key == claim.key)
        conn.execute(delete(t.idempotency_keys).where(*mine, k.created_at < stamp - KEY_TTL))
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount.
        taken = conn.execute(
            self._insert(t.idempotency_keys)
            .values(
                principal=claim.principal,
                key=claim.key,
                operation=claim.operation,
                request_hash=claim.request_hash,
                status=0,
                response="null",
                created_at=stamp,
            )
            .on_conflict_do_nothing(index_elements=["principal", "key"])
            .returning(k.key)
        ).first()
        if taken is not None:
            return None
        row = conn.execute(
            select(k.operation, k.request_hash, k.status, k.response).where(*mine)
        ).one()
        if (row.operation, row.request_hash) != (claim.operation, claim.request_hash):
            raise IdempotencyKeyReused(
                f"idempotency key {claim.key!r} was used for a different request "
                f"({row.operation}); a key names one write: send a new key for a new write, "
                "and the same request (same body) to retry a write",
                key=claim.key,
            )
        return Answer(int(row.status), json.loads(row.response))

    def _remember(self, conn: Connection, claim: Claim | None, status: int, body: Any) -> None:
        """Stores the answer of the write `claim` took the key for, in its transaction."""
        if claim is None:
            return
        k = t.idempotency_keys.c
        conn.execute(
            update(t.idempotency_keys)
            .where(k.principal == claim.principal, k.key == claim.key)
            .values(status=status, response=json.dumps(body, separators=(",", ":")))
        )

    def _sweep_keys(self, conn: Connection, stamp: float) -> None:
        """Deletes expired keys, at most once per `SWEEP_EVERY` per store (an index scan)."""
        if stamp - getattr(self, "_keys_swept_at", 0.0) < SWEEP_EVERY:
            return
        self._keys_swept_at = stamp
        k = t.idempotency_keys.c
        conn.execute(delete(t.idempotency_keys).where(k.created_at < stamp - KEY_TTL))
