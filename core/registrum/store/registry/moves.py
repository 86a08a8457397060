"""Alias moves: the one write that points an alias at a version, audited and kept in the
alias history. A direct move (`set_alias`) and an approved promotion request both make it."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from registrum.entities import _Unset
from registrum.errors import AliasMoved
from registrum.store import schema as t
from registrum.store._base import StoreBase, now
from registrum.store.audit_chain import current_actor
from registrum.store.registry.read import RegistryReadMixin


class AliasMovesMixin(RegistryReadMixin, StoreBase):
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
        before = None if before_id is None else numbers.get(before_id)
        after = None if after_id is None else numbers.get(after_id)
        conn.execute(
            t.alias_history.insert().values(
                model_id=model_id,
                alias=alias,
                from_version=before,
                to_version=after,
                actor=current_actor(),
                at=now(),
                request_id=request_id,
            )
        )
        self._stale_requests(conn, model_id, f"{model[0]}@{alias}", alias, model[1], after)

    def _stale_requests(
        self,
        conn: Connection,
        model_id: int,
        ref: str,
        alias: str,
        project: str,
        after: int | None,
    ) -> None:
        """Marks `stale` the open requests to move `alias` that were opened while it pointed
        elsewhere: their compare-and-set can no longer win, so they say so at once."""
        r = t.promotion_requests.c
        stale = conn.execute(
            select(r.id, r.version, r.from_version).where(
                r.model_id == model_id, r.alias == alias, r.state == "open"
            )
        ).all()
        where = f"version {after}" if after is not None else "nothing (it was removed)"
        for row in stale:
            if row.from_version == after:
                continue  # it points where it did when the request opened
            opened = f"version {row.from_version}" if row.from_version is not None else "nothing"
            reason = (
                f"{ref} moved to {where} after this request opened (it pointed at {opened}); "
                f"open a new request to move it to version {row.version}"
            )
            conn.execute(
                update(t.promotion_requests)
                .where(r.id == row.id, r.state == "open")
                .values(
                    state="stale",
                    decided_by=current_actor(),
                    decided_at=now(),
                    decision_comment=reason,
                )
            )
            self._audit(
                conn,
                "approval.stale",
                "promotion_request",
                str(row.id),
                project=project,
                before={"state": "open"},
                after={"state": "stale", "reason": reason},
            )
