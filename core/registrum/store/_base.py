"""What every part of the service layer shares: the engine, transactions, lookups, JSON."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, select
from sqlalchemy.exc import DataError, OperationalError, StatementError

from registrum import validation as v
from registrum.entities import Project
from registrum.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    ProjectNotFound,
    RegistrumError,
    RunNotFound,
    StoreUnavailable,
)
from registrum.store import schema as t
from registrum.store.acting import Principal, current_principal, rank
from registrum.store.audit_chain import append_event
from registrum.store.blobs import BlobStore
from registrum.store.db import READONLY

# Attempts at a new version number (artifact, dataset, model version) when a
# concurrent writer takes the one tried.
RETRIES = 8

# The lookups nearly every call makes, built once: building a statement costs a few times
# more than running it (SQLAlchemy then also reuses its cache key).
_RUN_BY_ID = select(t.runs).where(t.runs.c.id == bindparam("id"))
_PROJECT_NAME = select(t.projects.c.name).where(t.projects.c.id == bindparam("id"))
_PROJECT_ID = select(t.projects.c.id, t.projects.c.deleted_at).where(
    t.projects.c.name == bindparam("name")
)
_ROLE = select(t.memberships.c.role).where(
    t.memberships.c.project_id == bindparam("project_id"),
    t.memberships.c.user_id == bindparam("user_id"),
)


def now() -> float:
    return time.time()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


# Strings, every character but brackets, and an innermost pair: what `loads` needs to
# measure the nesting of stored text without decoding it.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PAIR = re.compile(r"\[\]|\{\}")


def loads(text: str | None) -> Any:
    """Stored JSON text as a value. Never fails on what is stored: a value written before
    the depth limit existed comes back with its parts below MAX_JSON_DEPTH as JSON text."""
    if text is None:
        return None
    if text.count("[") + text.count("{") > v.MAX_JSON_DEPTH:
        # Each pass drops the innermost pairs of brackets, so the depth is the number of
        # passes that empty the bracket skeleton; all of it runs in the regex engine.
        skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text))
        for _ in range(v.MAX_JSON_DEPTH):
            skeleton = _PAIR.sub("", skeleton)
        if skeleton:
            return _shallow(text)
    return json.loads(text)


def _shallow(text: str) -> Any:
    """`text` decoded, each array or object nested deeper than MAX_JSON_DEPTH kept as its
    JSON text (a string), found by a scan that does not recurse."""
    out: list[str] = []
    depth, start, i, n = 0, 0, 0, len(text)
    cut = -1  # where the subtree being replaced begins
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "[{":
            depth += 1
            if depth == v.MAX_JSON_DEPTH + 1 and cut < 0:
                cut = i
        elif c in "]}":
            if depth == v.MAX_JSON_DEPTH + 1 and cut >= 0:
                out.append(text[start:cut])
                out.append(json.dumps(text[cut : i + 1]))
                start, cut = i + 1, -1
            depth -= 1
        i += 1
    out.append(text[start:])
    return json.loads("".join(out))


def json_text(value: Any, what: str) -> str:
    """`value` as stored JSON text, checked (depth, size, valid Unicode); one that cannot be
    stored is an `InvalidArgument` naming `what`."""
    v.json_value(value, what)
    try:
        return v.json_size(dumps(value), what)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"{what} must be JSON-serialisable: {exc}", field=what) from None


def json_object(value: Mapping[str, Any] | None, what: str) -> str:
    """An optional object as stored JSON text; None is `{}`."""
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be an object")
    return json_text(dict(value), what)


# What a database refuses for a value's own sake (a number past a column's range, text
# with no UTF-8 form): the rules in `validation` stop these first; this is the last line,
# so that a value no rule caught is still the caller's 400, never a 500.
_UNSTORABLE = (DataError, OverflowError, UnicodeEncodeError)


def _unstorable(exc: BaseException) -> InvalidArgument:
    cause = exc.orig if isinstance(exc, StatementError) else exc
    return InvalidArgument(
        "a value in the request cannot be stored: a number is out of range, or text is "
        f"not valid Unicode ({type(cause).__name__}); check the numbers and text you sent"
    )


def _wrapped_unstorable(exc: StatementError) -> bool:
    return isinstance(exc.orig, OverflowError | UnicodeEncodeError)


class StoreBase:
    """Holds the engine and the blob backend; subclasses add one concern each."""

    def __init__(self, engine: Engine, blobs: BlobStore) -> None:
        self.engine = engine
        self.blobs = blobs

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"database error: {exc.orig}") from exc
        except _UNSTORABLE as exc:
            raise _unstorable(exc) from exc
        except StatementError as exc:
            if _wrapped_unstorable(exc):
                raise _unstorable(exc) from exc
            raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(**{READONLY: True}) as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"database error: {exc.orig}") from exc
        except _UNSTORABLE as exc:
            raise _unstorable(exc) from exc
        except StatementError as exc:
            if _wrapped_unstorable(exc):
                raise _unstorable(exc) from exc
            raise

    def _insert(self, table: Table) -> Any:
        """An INSERT that supports ON CONFLICT on both dialects."""
        return _dialect(self.engine.dialect.name).insert(table)

    def _upsert(self, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
        """INSERT ... ON CONFLICT (`keys`) DO UPDATE SET each of `columns` to the new row's:
        made once per dialect (building `excluded` costs more than running the statement)."""
        return _upsert(self.engine.dialect.name, table, keys, columns)

    def _project_id(
        self,
        conn: Connection,
        name: str,
        *,
        create: bool = False,
        need: str | None = None,
        deleted_ok: bool = False,
    ) -> int:
        """The id of project `name`; with `create`, made if new (its creator becomes its
        admin); with `need`, the signed-in user must hold that role on it. A deleted project
        is refused (`ProjectNotFound`; `Conflict` where it would be written to) unless
        `deleted_ok`."""
        name = v.name(name, "project name")
        found = conn.execute(_PROJECT_ID, {"name": name}).first()
        if found is not None:
            if need is not None:
                self._require(conn, int(found.id), need, name=name)
            if found.deleted_at is not None and not deleted_ok:
                raise _deleted_project(name, create)
            return int(found.id)
        if not create:
            raise ProjectNotFound(f"project {name!r} does not exist", project=name)
        self._require_may_create(name)
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT's rowcount.
        created = conn.execute(
            self._insert(t.projects)
            .values(name=name, created_at=now())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(t.projects.c.id)
        ).first()
        row = conn.execute(_PROJECT_ID, {"name": name}).one()
        project_id = int(row.id)
        if created is not None:
            self._audit(conn, "project.created", "project", name, project=name)
            self._make_creator_admin(conn, project_id, name)
        elif need is not None:
            self._require(conn, project_id, need, name=name)
        if row.deleted_at is not None and not deleted_ok:
            raise _deleted_project(name, create)
        return project_id

    # -- access control (rules in store/governance/access.py) ---------------------------------

    def _require(
        self, conn: Connection, project_id: int, role: str, *, name: str | None = None
    ) -> None:
        """Raises `Forbidden` unless the signed-in user holds `role` or a higher one on the
        project; a server admin and the embedded store (nobody signed in) hold every role.
        A scoped token holds at most its scope's role, on its scope's project alone."""
        principal = current_principal()
        if principal is None or principal.server_admin:
            return
        held: str | None
        if principal.scope is not None:
            name = name or self._project_name(conn, project_id)
            held = self._scoped_role(conn, principal, project_id, name)
        else:
            held = conn.execute(
                _ROLE, {"project_id": project_id, "user_id": principal.user_id}
            ).scalar()
        if held is not None and rank(held) >= rank(role):
            return
        name = name or self._project_name(conn, project_id)
        if principal.scope is not None and held is None:
            raise Forbidden(
                f"this token is scoped to project {principal.scope[0]!r}; project {name!r} is "
                "out of its reach: use a token without that scope",
                project=name,
                needed=role,
            )
        if principal.scope is not None and rank(principal.scope[1]) < rank(role):
            raise Forbidden(
                f"this token is scoped to {principal.scope[1]} of project {name!r}; this "
                f"needs {role}: use a token with a wider scope",
                project=name,
                needed=role,
            )
        has = f"is {held} of" if held else "is not a member of"
        raise Forbidden(
            f"user {principal.name!r} {has} project {name!r}; this needs {role}: "
            f"ask a project admin (registrum members add {name} {principal.name} {role})",
            project=name,
            needed=role,
        )

    def _scoped_role(
        self, conn: Connection, principal: Principal, project_id: int, name: str
    ) -> str | None:
        """What a scoped token holds on a project: the lower of its scope's role and its
        user's (a server admin's: the scope's), on the scope's project; elsewhere none."""
        assert principal.scope is not None
        project, role = principal.scope
        if name != project:
            return None
        if principal.scope_admin:
            return role
        held = conn.execute(
            _ROLE, {"project_id": project_id, "user_id": principal.user_id}
        ).scalar()
        if held is None:
            return None
        return held if rank(held) < rank(role) else role

    def _scope_held(self, conn: Connection, principal: Principal) -> tuple[int, str] | None:
        """A scoped token's project (its id) and the role it holds there; None when it holds
        none (the project is gone, or its user is no member)."""
        assert principal.scope is not None
        found = conn.execute(_PROJECT_ID, {"name": principal.scope[0]}).first()
        if found is None:
            return None
        held = self._scoped_role(conn, principal, int(found.id), principal.scope[0])
        return None if held is None else (int(found.id), held)

    def _require_may_create(self, project: str) -> None:
        """Anyone signed in may create projects, but a scoped token only its own."""
        principal = current_principal()
        if principal is not None and principal.scope is not None and principal.scope[0] != project:
            raise Forbidden(
                f"this token is scoped to project {principal.scope[0]!r}; it cannot create "
                f"project {project!r}",
                project=project,
            )

    def _require_server_admin(self, what: str) -> None:
        """Raises `Forbidden` unless a server admin (or the embedded store) is acting."""
        principal = current_principal()
        if principal is not None and not principal.server_admin:
            scoped = " (a scoped token never is)" if principal.scope is not None else ""
            raise Forbidden(
                f"{what} needs a server admin; user {principal.name!r} is not one{scoped}",
                needed="admin",
            )

    def _visible_projects(self, conn: Connection, role: str = "viewer") -> list[int] | None:
        """Ids of the projects where the signed-in user holds `role` or higher; None: all."""
        principal = current_principal()
        if principal is None or principal.server_admin:
            return None
        if principal.scope is not None:
            held = self._scope_held(conn, principal)
            return [held[0]] if held is not None and rank(held[1]) >= rank(role) else []
        m = t.memberships.c
        rows = conn.execute(select(m.project_id, m.role).where(m.user_id == principal.user_id))
        return [int(p) for p, held in rows if rank(held) >= rank(role)]

    def _grant_every_project_roles(
        self, conn: Connection, project_id: int, name: str, *, creator: int | None
    ) -> None:
        """Gives a new project's role to each user whose groups hold a role on every project
        (`"*"` in the server's role map, as of their last sign-in), but its creator."""
        u = t.users.c
        query = select(u.id, u.name, u.groups_all).where(u.groups_all.is_not(None), ~u.disabled)
        if creator is not None:
            query = query.where(u.id != creator)
        rows = conn.execute(query).all()
        for row in rows:
            grant = json.loads(row.groups_all)
            conn.execute(
                t.memberships.insert().values(
                    project_id=project_id,
                    user_id=row.id,
                    role=grant["role"],
                    created_at=now(),
                    source=grant["source"],
                )
            )
            self._member_event(
                conn, "member.added", name, row.name, None, (grant["role"], grant["source"])
            )

    def _member_event(
        self,
        conn: Connection,
        action: str,
        project: str,
        user: str,
        before: Any,
        after: tuple[str, str] | None,
    ) -> None:
        """The audit event of a membership that groups gave, changed or took: `before` a
        memberships row (or None), `after` (role, source) (or None)."""
        self._audit(
            conn,
            action,
            "membership",
            f"{project}/{user}",
            project=project,
            before=None if before is None else {"role": before.role, "source": before.source},
            after=None if after is None else {"role": after[0], "source": after[1]},
        )

    def _visible_named(self, conn: Connection, names: Sequence[str]) -> dict[int, str]:
        """The projects among `names` that exist and the signed-in user may see: id -> name."""
        p = t.projects.c
        query = select(p.id, p.name).where(p.name.in_(names))
        visible = self._visible_projects(conn)
        if visible is not None:
            query = query.where(p.id.in_(visible))
        return {int(pid): str(name) for pid, name in conn.execute(query)}

    def _make_creator_admin(self, conn: Connection, project_id: int, name: str) -> None:
        principal = current_principal()
        self._grant_every_project_roles(
            conn, project_id, name, creator=None if principal is None else principal.user_id
        )
        if principal is None:
            return
        conn.execute(
            t.memberships.insert().values(
                project_id=project_id, user_id=principal.user_id, role="admin", created_at=now()
            )
        )
        self._audit(
            conn,
            "member.added",
            "membership",
            f"{name}/{principal.name}",
            project=name,
            after={"role": "admin"},
        )

    def _audit(
        self,
        conn: Connection,
        action: str,
        entity_type: str,
        entity_id: Any,
        *,
        project: str | None = None,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """Appends an audit event for a mutation, in the transaction that makes it."""
        append_event(
            conn, action, entity_type, entity_id, project=project, before=before, after=after
        )

    def _audit_run(
        self, conn: Connection, row: Any, action: str, *, before: Any = None, after: Any = None
    ) -> None:
        """An audit event about a run (`row`, a runs row), in its project."""
        project = self._project_name(conn, row.project_id)
        self._audit(conn, action, "run", row.id, project=project, before=before, after=after)

    def _run_row(self, conn: Connection, run_id: str, *, need: str | None = None) -> Any:
        """A run's row; with `need`, the signed-in user must hold that role on its project."""
        row = conn.execute(_RUN_BY_ID, {"id": run_id}).first()
        if row is None:
            raise RunNotFound(f"run {run_id!r} does not exist", run_id=run_id)
        if need is not None:
            self._require(conn, row.project_id, need)
        return row

    def _write_tags(
        self, conn: Connection, table: Table, owner: str, owner_id: Any, tags: dict[str, str]
    ) -> None:
        """Upserts `tags` of the row `owner_id` in a tag table keyed by (`owner`, key)."""
        if not tags:
            return
        conn.execute(
            self._upsert(table, (owner, "key"), ("value",)),
            [{owner: owner_id, "key": k, "value": val} for k, val in tags.items()],
        )

    def _next_version(self, conn: Connection, table: Table, project_id: int, name: str) -> int:
        """The number the next version of `name` takes in a versioned table of a project."""
        c = table.c
        last = conn.execute(
            select(func.max(c.version)).where(c.project_id == project_id, c.name == name)
        ).scalar()
        return int(last or 0) + 1

    def _version_id(
        self, conn: Connection, table: Table, project_id: int, name: str, wanted: int | None
    ) -> int | None:
        """The row id of version `wanted` of `name` (None: the latest), if there is one."""
        c = table.c
        query = select(c.id).where(c.project_id == project_id, c.name == name)
        if "deleted_at" in c:
            query = query.where(c.deleted_at.is_(None))
        if wanted is None:
            query = query.order_by(c.version.desc()).limit(1)
        else:
            query = query.where(c.version == wanted)
        found = conn.execute(query).scalar()
        return None if found is None else int(found)

    def _window(self, query: Any, limit: int | None, offset: int) -> Any:
        """`query` cut to one page: at most `limit` rows after the first `offset`."""
        if limit is not None:
            query = query.limit(v.integer(limit, "limit", minimum=1))
        if v.integer(offset, "offset", minimum=0, bits=64):
            query = query.offset(offset)
        return query

    def _project_name(self, conn: Connection, project_id: int) -> str:
        name: str = conn.execute(_PROJECT_NAME, {"id": project_id}).scalar_one()
        return name

    def _key_ids(
        self, conn: Connection, project_id: int, names: Iterable[str], *, create: bool = True
    ) -> dict[str, int]:
        """Interned ids of key names; missing ones are created when `create`."""
        wanted = set(names)
        if not wanted:
            return {}
        query = select(t.keys.c.name, t.keys.c.id).where(
            t.keys.c.project_id == project_id, t.keys.c.name.in_(wanted)
        )
        found = {row.name: int(row.id) for row in conn.execute(query)}
        missing = wanted - found.keys()
        if missing and create:
            conn.execute(
                self._insert(t.keys).on_conflict_do_nothing(index_elements=["project_id", "name"]),
                [{"project_id": project_id, "name": n} for n in sorted(missing)],
            )
            found = {row.name: int(row.id) for row in conn.execute(query)}
        return found

    def _key_names(self, conn: Connection, ids: Iterable[int]) -> dict[int, str]:
        ids = set(ids)
        if not ids:
            return {}
        rows = conn.execute(select(t.keys.c.id, t.keys.c.name).where(t.keys.c.id.in_(ids)))
        return {int(r.id): r.name for r in rows}


def _dialect(name: str) -> Any:
    """SQLAlchemy's module for `name` (PostgreSQL's is imported only where it is used: it
    costs an embedded store 0.15 s to start)."""
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    from sqlalchemy.dialects import sqlite

    return sqlite


@functools.cache
def _upsert(dialect: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    stmt = _dialect(dialect).insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
    )


def _deleted_project(name: str, writing: bool) -> RegistrumError:
    """The refusal of a deleted project: not found to a read, a conflict to a write."""
    message = (
        f"project {name!r} was deleted; a project admin restores it "
        f"(registrum projects restore {name})"
    )
    if writing:
        return Conflict(message + " before anything is logged to it", project=name)
    return ProjectNotFound(message, project=name, deleted=True)


def project_record(row: Any) -> Project:
    """The `Project` of a projects row."""
    return Project(
        id=row.id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        keep_checkpoints=row.keep_checkpoints,
        artifact_ttl=row.artifact_ttl,
    )
