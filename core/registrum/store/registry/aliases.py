"""Model aliases: set, moved and deleted, optionally as a compare-and-set."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import IntegrityError

from registrum import validation as v
from registrum.entities import UNSET, ModelVersion, _Unset
from registrum.errors import AliasMoved, AliasNotFound, ApprovalRequired
from registrum.store import schema as t
from registrum.store._base import StoreBase
from registrum.store.governance.approvals import ApprovalsMixin, protected_aliases
from registrum.store.idempotency import Claim, IdempotencyMixin, claim


class _Protected(Exception):
    """Ends `set_alias`'s transaction without a trace (nor the idempotency key it took) when
    the alias is protected: the move then opens a promotion request instead."""


class AliasesMixin(ApprovalsMixin, IdempotencyMixin, StoreBase):
    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expected_version: int | _Unset | None = UNSET,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Points `alias` at `version`.

        With `expected_version`, the move is a compare-and-set: it happens only
        if the alias still points at that version (None: only if the alias does
        not exist yet); otherwise `AliasMoved` is raised and nothing changes.
        Retried with the same `idempotency_key`, it returns the first answer (a
        compare-and-set that won does not then fail against its own move).
        """
        name = v.name(name, "model name")
        v.alias(alias)
        v.integer(version, "version", minimum=1)
        if expected_version is not None and not isinstance(expected_version, _Unset):
            v.integer(expected_version, "expected_version", minimum=1)
        expected = "any" if isinstance(expected_version, _Unset) else expected_version
        keyed = claim(idempotency_key, "alias.set", [name, alias, version, expected])
        try:
            with self._tx() as conn:
                answer = self._recall(conn, keyed)
                if answer is not None:
                    return ModelVersion.from_dict(answer.body)
                model = self._model_row(conn, name, need="editor")
                if alias in protected_aliases(conn, model.id):
                    raise _Protected
                return self._set(conn, keyed, model.id, name, alias, version, expected_version)
        except IntegrityError:
            raise AliasMoved(
                f"{name}@{alias} was set concurrently; read it again and retry"
            ) from None
        except _Protected:
            pass
        # A protected alias does not move: the move opens a promotion request instead.
        raise self._open_for_move(name, alias, version, expected_version, idempotency_key)

    def _set(
        self,
        conn: Connection,
        keyed: Claim | None,
        model_id: int,
        name: str,
        alias: str,
        version: int,
        expected_version: int | _Unset | None,
    ) -> ModelVersion:
        """The move itself, in the caller's transaction, for an alias no policy protects."""
        version_id = self._resolve(conn, name, version)
        expected_id: int | _Unset | None = expected_version
        if isinstance(expected_version, int):
            expected_id = self._version_id_or_none(conn, model_id, expected_version)
            if expected_id is None:
                raise AliasMoved(f"{name}@{alias} does not point at version {expected_version}")
        self._move_alias(conn, model_id, alias, version_id, expected_id, label=f"{name}@{alias}")
        moved = self._load_version(conn, version_id)
        self._remember(conn, keyed, 200, moved.to_dict())
        return moved

    def delete_alias(
        self, name: str, alias: str, *, expected_version: int | _Unset = UNSET
    ) -> None:
        name = v.name(name, "model name")
        v.alias(alias)
        with self._tx() as conn:
            model = self._model_row(conn, name, need="editor")
            self._refuse_protected(conn, model.id, name, alias, None)
            a = t.aliases.c
            before = conn.execute(
                select(a.version_id).where(a.model_id == model.id, a.alias == alias)
            ).scalar()
            query = delete(t.aliases).where(a.model_id == model.id, a.alias == alias)
            if isinstance(expected_version, int):
                query = query.where(
                    a.version_id == self._version_id_or_none(conn, model.id, expected_version)
                )
            if conn.execute(query).rowcount == 0:
                exists = conn.execute(
                    select(a.alias).where(a.model_id == model.id, a.alias == alias)
                ).first()
                if exists is None:
                    raise AliasNotFound(
                        f"model {name!r} has no alias {alias!r}", model=name, alias=alias
                    )
                raise AliasMoved(f"{name}@{alias} does not point at version {expected_version}")
            self._audit_alias(conn, model.id, alias, before, None)

    # -- helpers -------------------------------------------------------------

    def _refuse_protected(
        self, conn: Connection, model_id: int, name: str, alias: str, version: int | None
    ) -> None:
        """Raises `ApprovalRequired` when the model's policy protects `alias`: it moves only
        through an approved promotion request (store/governance/approvals.py)."""
        if alias not in protected_aliases(conn, model_id):
            return
        how = (
            f"request the move: client.request_promotion({name!r}, {alias!r}, {version}) "
            f"or registrum requests open {name} {alias} {version}"
            if version is not None
            else "ask a project admin to unprotect it first (registrum policy set)"
        )
        raise ApprovalRequired(
            f"{name}@{alias} is protected by the model's policy and moves only through an "
            f"approved request: {how}",
            model=name,
            alias=alias,
        )
