"""Model aliases: set, moved and deleted, optionally as a compare-and-set."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from registrum.entities import UNSET, ModelVersion, _Unset
from registrum.errors import AliasMoved, AliasNotFound, ApprovalRequired
from registrum.store import schema as t
from registrum.store import validation as v
from registrum.store._base import StoreBase, loads, now
from registrum.store.auditing import current_actor
from registrum.store.idempotency import IdempotencyMixin, claim
from registrum.store.registry_read import RegistryReadMixin


class AliasesMixin(RegistryReadMixin, IdempotencyMixin, StoreBase):
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
                self._refuse_protected(conn, model.id, name, alias, version)
                version_id = self._resolve(conn, name, version)
                expected_id: int | _Unset | None = expected_version
                if isinstance(expected_version, int):
                    expected_id = self._version_id_or_none(conn, model.id, expected_version)
                    if expected_id is None:
                        raise AliasMoved(
                            f"{name}@{alias} does not point at version {expected_version}"
                        )
                self._move_alias(
                    conn, model.id, alias, version_id, expected_id, label=f"{name}@{alias}"
                )
                moved = self._load_version(conn, version_id)
                self._remember(conn, keyed, 200, moved.to_dict())
                return moved
        except IntegrityError:
            raise AliasMoved(
                f"{name}@{alias} was set concurrently; read it again and retry"
            ) from None

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
        through an approved promotion request (store/approvals.py)."""
        protected = conn.execute(
            select(t.model_policies.c.protected).where(t.model_policies.c.model_id == model_id)
        ).scalar()
        if protected is None or alias not in loads(protected):
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

    def _move_alias(
        self,
        conn: Connection,
        model_id: int,
        alias: str,
        version_id: int,
        expected_id: int | _Unset | None,
        *,
        label: str = "",
        request_id: int | None = None,
    ) -> None:
        a = t.aliases.c
        stamp = now()
        before = conn.execute(
            select(a.version_id).where(a.model_id == model_id, a.alias == alias)
        ).scalar()
        if isinstance(expected_id, _Unset):
            stmt = self._insert(t.aliases)
            conn.execute(
                stmt.values(
                    model_id=model_id, alias=alias, version_id=version_id, updated_at=stamp
                ).on_conflict_do_update(
                    index_elements=["model_id", "alias"],
                    set_={"version_id": stmt.excluded.version_id, "updated_at": stamp},
                )
            )
            self._audit_alias(conn, model_id, alias, before, version_id, request_id)
            return
        if expected_id is None:
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount.
            inserted = conn.execute(
                self._insert(t.aliases)
                .values(model_id=model_id, alias=alias, version_id=version_id, updated_at=stamp)
                .on_conflict_do_nothing(index_elements=["model_id", "alias"])
                .returning(a.alias)
            ).first()
            if inserted is None:
                raise AliasMoved(f"{label} already exists; expected it not to")
            self._audit_alias(conn, model_id, alias, None, version_id, request_id)
            return
        done = conn.execute(
            update(t.aliases)
            .where(a.model_id == model_id, a.alias == alias, a.version_id == expected_id)
            .values(version_id=version_id, updated_at=stamp)
        ).rowcount
        if not done:
            raise AliasMoved(
                f"{label} no longer points at the expected version; read it again and retry"
            )
        self._audit_alias(conn, model_id, alias, expected_id, version_id, request_id)

    def _audit_alias(
        self,
        conn: Connection,
        model_id: int,
        alias: str,
        before_id: int | None,
        after_id: int | None,
        request_id: int | None = None,
    ) -> None:
        """An `alias.moved` (or `alias.deleted`) event, with version numbers before and after,
        and the move kept in the alias history (with the request that approved it, if any)."""
        model = conn.execute(
            select(t.registered_models.c.name, t.projects.c.name)
            .join(t.projects, t.projects.c.id == t.registered_models.c.project_id)
            .where(t.registered_models.c.id == model_id)
        ).one()
        numbers = {
            i: conn.execute(
                select(t.model_versions.c.version).where(t.model_versions.c.id == i)
            ).scalar()
            for i in (before_id, after_id)
            if i is not None
        }
        self._audit(
            conn,
            "alias.moved" if after_id is not None else "alias.deleted",
            "alias",
            f"{model[0]}@{alias}",
            project=model[1],
            before=None if before_id is None else {"version": numbers[before_id]},
            after=None
            if after_id is None
            else {"version": numbers[after_id], **({"request": request_id} if request_id else {})},
        )
        conn.execute(
            t.alias_history.insert().values(
                model_id=model_id,
                alias=alias,
                from_version=numbers.get(before_id) if before_id is not None else None,
                to_version=numbers.get(after_id) if after_id is not None else None,
                actor=current_actor(),
                at=now(),
                request_id=request_id,
            )
        )
