"""Access control: users, their API tokens, and their roles in projects.

Roles per project: viewer < editor < reviewer < admin, each with the rights of those before it.
Reads need viewer; writes need editor; managing members needs the project's admin. A server
admin holds every role on every project and alone manages users and other users' tokens.
Every user may create, list and revoke their own tokens, and create projects (becoming their
admin). The checks run in the service layer (`StoreBase._require`) for the signed-in user of
`registrum.store.acting`; with nobody signed in (the embedded store) everything is allowed.

A token is shown once, when it is made: the store keeps only its sha256 and a short prefix to
tell tokens apart in lists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from registrum import validation as v
from registrum.entities import ApiToken, Membership, User
from registrum.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    Unauthorized,
)
from registrum.store import schema as t
from registrum.store._base import StoreBase, now
from registrum.store.acting import ROLES, Principal, current_principal, rank
from registrum.store.audit_chain import LOCAL_ACTOR
from registrum.store.idempotency import IdempotencyMixin, claim

TOKEN_PREFIX = "rgm_"
PREFIX_LENGTH = 12  # what lists show of a token: "rgm_" and 8 characters of its secret
LAST_USED_EVERY = 60.0  # seconds between writes of a token's last-used time


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh secret: 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _check_token(token: Any) -> str:
    if not isinstance(token, str) or not 16 <= len(token) <= 256 or not token.isprintable():
        raise InvalidArgument("a token must be 16 to 256 printable characters")
    if token != token.strip() or " " in token:
        raise InvalidArgument("a token must not contain spaces")
    return token


def _role(role: Any) -> str:
    if role not in ROLES:
        raise InvalidArgument(f"role {role!r} is not one of {', '.join(ROLES)}")
    return str(role)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        name=row.name,
        server_admin=bool(row.server_admin),
        disabled=bool(row.disabled),
        created_at=row.created_at,
        service=bool(row.service),
        email=row.email,
        groups=None if row.groups is None else json.loads(row.groups),
    )


def _token(row: Any, user: str, secret: str | None = None) -> ApiToken:
    return ApiToken(
        id=row.id,
        user=user,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        token=secret,
        project=row.project,
        role=row.role,
    )


class AccessMixin(IdempotencyMixin, StoreBase):
    # -- signing in ----------------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        """The user a bearer token belongs to; `Unauthorized` when the token is unknown,
        expired or revoked, or its user is disabled."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("this server needs an API token: set REGISTRUM_TOKEN")
        k, u = t.api_tokens.c, t.users.c
        with self._read() as conn:
            row = conn.execute(
                select(k.id, k.expires_at, k.revoked_at, k.last_used_at, k.user_id)
                .add_columns(k.project, k.role, u.name, u.server_admin, u.disabled)
                .join(t.users, u.id == k.user_id)
                .where(k.token_hash == hash_token(token))
            ).first()
        stamp = now()
        if row is None:
            raise Unauthorized("the API token is not valid: ask an admin for a new one")
        if row.revoked_at is not None:
            raise Unauthorized("the API token was revoked: create a new one")
        if row.expires_at is not None and row.expires_at <= stamp:
            raise Unauthorized("the API token has expired: create a new one")
        if row.disabled:
            raise Unauthorized(f"user {row.name!r} is disabled: ask a server admin")
        if row.last_used_at is None or stamp - row.last_used_at >= LAST_USED_EVERY:
            with self._tx() as conn:
                conn.execute(update(t.api_tokens).where(k.id == row.id).values(last_used_at=stamp))
        scoped = row.project is not None
        return Principal(
            user_id=int(row.user_id),
            name=row.name,
            server_admin=bool(row.server_admin) and not scoped,
            scope=(row.project, row.role) if scoped else None,
            scope_admin=bool(row.server_admin) and scoped,
        )

    def whoami(self) -> User:
        """The signed-in user (`server_admin` as the token allows: a scoped token is none);
        embedded, the local user, who may do everything."""
        principal = current_principal()
        if principal is None:
            return User(id=0, name=LOCAL_ACTOR, server_admin=True, disabled=False, created_at=0.0)
        with self._read() as conn:
            user = _user(self._user_row(conn, principal.name))
        # A scoped token is no server admin, whatever its user is.
        return dataclasses.replace(user, server_admin=principal.server_admin)

    def my_roles(self) -> dict[str, str]:
        """The signed-in user's role in each project they are a member of, by project name
        (embedded: none; the local user holds every role as a server admin)."""
        principal = current_principal()
        if principal is None:
            return {}
        m, p = t.memberships.c, t.projects.c
        with self._read() as conn:
            if principal.scope is not None:
                held = self._scope_held(conn, principal)
                return {} if held is None else {principal.scope[0]: held[1]}
            rows = conn.execute(
                select(p.name, m.role)
                .join(t.projects, p.id == m.project_id)
                .where(m.user_id == principal.user_id)
                .order_by(p.name)
            ).all()
        return {name: role for name, role in rows}

    def bootstrap_admin(self, *, name: str = "admin", token: str | None = None) -> str | None:
        """Makes the first server admin, with a token, when the store has no user yet.

        Returns the token (`token`, or a fresh one) when the admin was made; None when the
        store already had users (then nothing changes and `token` is not used).
        """
        self._require_server_admin("making the first admin")
        name = v.name(name, "user name")
        secret = new_token() if token is None else _check_token(token)
        try:
            with self._tx() as conn:
                if conn.execute(select(func.count()).select_from(t.users)).scalar_one():
                    return None
                user_id = self._insert_user(conn, name, server_admin=True)
                self._insert_token(conn, user_id, name, "bootstrap", secret, None)
        except IntegrityError:
            return None  # another server process made it first
        return secret

    # -- users ---------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        *,
        server_admin: bool = False,
        service: bool = False,
        idempotency_key: str | None = None,
    ) -> User:
        """A new user (a server admin only). `service`: a service account, for machines: it
        cannot sign in through the identity provider, and only server admins make its
        tokens. Retried with the same `idempotency_key`, it returns the user the first call
        made instead of `AlreadyExists`."""
        self._require_server_admin("creating users")
        name = v.name(name, "user name")
        if not isinstance(server_admin, bool):
            raise InvalidArgument("server_admin must be true or false")
        if not isinstance(service, bool):
            raise InvalidArgument("service must be true or false")
        if service and server_admin:
            raise InvalidArgument(
                "a service account cannot be a server admin: give it project roles "
                "(registrum members add PROJECT NAME ROLE)"
            )
        keyed = claim(idempotency_key, "user.create", [name, server_admin, service])
        try:
            with self._tx() as conn:
                answer = self._recall(conn, keyed)
                if answer is not None:
                    return User.from_dict(answer.body)
                if conn.execute(select(t.users.c.id).where(t.users.c.name == name)).first():
                    raise AlreadyExists(f"user {name!r} already exists", user=name)
                user_id = self._insert_user(conn, name, server_admin=server_admin, service=service)
                row = conn.execute(select(t.users).where(t.users.c.id == user_id)).one()
                user = _user(row)
                self._remember(conn, keyed, 201, user.to_dict())
                return user
        except IntegrityError:
            raise AlreadyExists(f"user {name!r} already exists", user=name) from None

    def list_users(self) -> list[User]:
        """Every user, by name (a server admin only)."""
        self._require_server_admin("listing users")
        with self._read() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).all()
        return [_user(r) for r in rows]

    def disable_user(self, name: str) -> User:
        """Disables a user: their tokens stop working (a server admin only)."""
        self._require_server_admin("disabling users")
        name = v.name(name, "user name")
        principal = current_principal()
        if principal is not None and principal.name == name:
            raise Conflict("you cannot disable yourself; ask another server admin")
        with self._tx() as conn:
            row = self._user_row(conn, name)
            if not row.disabled:
                conn.execute(update(t.users).where(t.users.c.id == row.id).values(disabled=True))
                self._audit(
                    conn,
                    "user.disabled",
                    "user",
                    name,
                    before={"disabled": False},
                    after={"disabled": True},
                )
            return _user(self._user_row(conn, name))

    # -- tokens --------------------------------------------------------------------

    def create_token(
        self,
        *,
        name: str = "default",
        user: str | None = None,
        expires_at: float | None = None,
        project: str | None = None,
        role: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApiToken:
        """A new API token for `user` (default: yourself). Its `token` is the secret, shown
        this once; only its sha256 is kept. `expires_at`: Unix time, or None for never.
        `project` and `role` (both or neither) scope it: it may do at most `role` on
        `project`, however much its user may do, and nothing elsewhere. Tokens are made with
        an unscoped token; a service account's only by a server admin.

        Retried with the same `idempotency_key`, it makes no second token: as the secret is
        not kept, the first call's token gets a new secret (the lost one stops working) and
        is returned with it."""
        v.name(name, "token name")
        if expires_at is not None:
            v.timestamp(expires_at, "expires_at")
            if expires_at <= now():
                raise InvalidArgument("expires_at is in the past; give a later time")
        if (project is None) != (role is None):
            raise InvalidArgument(
                "a scoped token needs both a project and a role (e.g. --project vision "
                "--role editor); give neither for a token that may do all its user may"
            )
        if project is not None:
            project = v.name(project, "project name")
            _role(role)
        principal = current_principal()
        if principal is not None and principal.scope is not None:
            raise Forbidden(
                "a scoped token cannot make tokens: use a token without a scope, or sign in"
            )
        keyed = claim(idempotency_key, "token.create", [name, user, expires_at, project, role])
        with self._tx() as conn:
            answer = self._recall(conn, keyed)
            if answer is not None:
                return self._reissue_token(conn, int(answer.body["id"]))
            owner = self._token_owner(conn, user, "creating tokens for other users")
            if owner.disabled:
                raise Conflict(f"user {owner.name!r} is disabled; enable them first")
            if owner.service and principal is not None and not principal.server_admin:
                raise Forbidden(
                    f"{owner.name!r} is a service account: only a server admin makes its tokens"
                )
            if project is not None:
                self._check_scope(conn, owner, project, str(role))
            secret = new_token()
            token_id = self._insert_token(
                conn, owner.id, owner.name, name, secret, expires_at, project=project, role=role
            )
            row = conn.execute(select(t.api_tokens).where(t.api_tokens.c.id == token_id)).one()
            self._remember(conn, keyed, 201, _token(row, owner.name).to_dict())
            return _token(row, owner.name, secret)

    def _reissue_token(self, conn: Connection, token_id: int) -> ApiToken:
        """A new secret for token `token_id`, which a keyed creation made: its answer was lost,
        and with it the only copy of the first secret."""
        k, u = t.api_tokens.c, t.users.c
        query = (
            select(t.api_tokens, u.name.label("user"))
            .join(t.users, u.id == k.user_id)
            .where(k.id == token_id)
        )
        row = conn.execute(query).one()
        if row.revoked_at is not None:
            raise Conflict(
                f"token {token_id}, which this idempotency key created, was revoked since: "
                "create a new token (with a new key)"
            )
        secret = new_token()
        prefix = secret[:PREFIX_LENGTH]
        conn.execute(
            update(t.api_tokens)
            .where(k.id == token_id)
            .values(prefix=prefix, token_hash=hash_token(secret))
        )
        self._audit(
            conn,
            "token.reissued",
            "token",
            token_id,
            after={"user": row.user, "name": row.name, "prefix": prefix},
        )
        row = conn.execute(query).one()
        return _token(row, row.user, secret)

    def list_tokens(self, *, user: str | None = None) -> list[ApiToken]:
        """The tokens of `user` (default: yourself; embedded: everyone's), without secrets."""
        k, u = t.api_tokens.c, t.users.c
        query = select(t.api_tokens, u.name.label("user")).join(t.users, u.id == k.user_id)
        with self._read() as conn:
            if user is not None or current_principal() is not None:
                owner = self._token_owner(conn, user, "listing other users' tokens")
                query = query.where(k.user_id == owner.id)
            rows = conn.execute(query.order_by(u.name, k.id)).all()
        return [_token(r, r.user) for r in rows]

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revokes a token: it stops working at once (your own, or any as a server admin)."""
        v.integer(token_id, "token id", minimum=1)
        k, u = t.api_tokens.c, t.users.c
        with self._tx() as conn:
            row = conn.execute(
                select(t.api_tokens, u.name.label("user"))
                .join(t.users, u.id == k.user_id)
                .where(k.id == token_id)
            ).first()
            if row is None:
                raise NotFound(f"there is no token {token_id}: see registrum tokens list")
            principal = current_principal()
            if principal is not None and principal.scope is not None:
                raise Forbidden(
                    "a scoped token cannot revoke tokens: use a token without a scope, or sign in"
                )
            if (
                principal is not None
                and not principal.server_admin
                and row.user_id != principal.user_id
            ):
                raise Forbidden(
                    f"token {token_id} belongs to {row.user!r}; only they or a server admin "
                    "may revoke it"
                )
            if row.revoked_at is None:
                stamp = now()
                conn.execute(update(t.api_tokens).where(k.id == token_id).values(revoked_at=stamp))
                self._audit(
                    conn,
                    "token.revoked",
                    "token",
                    token_id,
                    before={"user": row.user, "name": row.name, "prefix": row.prefix},
                    after={"revoked_at": stamp},
                )
            found = conn.execute(select(t.api_tokens).where(k.id == token_id)).one()
            return _token(found, row.user)

    # -- project members -----------------------------------------------------------

    def add_member(self, project: str, user: str, role: str) -> Membership:
        """Gives `user` `role` on `project`, or changes the role they had (a project admin).
        A role given by hand stays until taken by hand: groups no longer change it."""
        project = v.name(project, "project name")
        user = v.name(user, "user name")
        _role(role)
        with self._tx() as conn:
            project_id = self._project_id(conn, project, need="admin")
            user_row = self._user_row(conn, user)
            m = t.memberships.c
            found = conn.execute(
                select(m.role, m.source).where(m.project_id == project_id, m.user_id == user_row.id)
            ).first()
            held = None if found is None else found.role
            if found is None:
                conn.execute(
                    t.memberships.insert().values(
                        project_id=project_id, user_id=user_row.id, role=role, created_at=now()
                    )
                )
            elif held != role or found.source is not None:
                if held == "admin" and role != "admin":
                    self._keep_an_admin(conn, project_id, project, user_row.id)
                conn.execute(
                    update(t.memberships)
                    .where(m.project_id == project_id, m.user_id == user_row.id)
                    .values(role=role, source=None)
                )
            if found is None or held != role or found.source is not None:
                before = None if found is None else {"role": held, "source": found.source}
                self._audit(
                    conn,
                    "member.added" if held is None else "member.changed",
                    "membership",
                    f"{project}/{user}",
                    project=project,
                    before=before,
                    after={"role": role},
                )
            return self._membership(conn, project_id, project, user_row)

    def list_members(self, project: str) -> list[Membership]:
        """The members of a project and their roles, by user name (viewer)."""
        project = v.name(project, "project name")
        m, u = t.memberships.c, t.users.c
        with self._read() as conn:
            project_id = self._project_id(conn, project, need="viewer")
            rows = conn.execute(
                select(u.name, m.role, m.created_at, m.source)
                .join(t.users, u.id == m.user_id)
                .where(m.project_id == project_id)
                .order_by(u.name)
            ).all()
        return [
            Membership(
                project=project, user=r.name, role=r.role, created_at=r.created_at, source=r.source
            )
            for r in rows
        ]

    def remove_member(self, project: str, user: str) -> None:
        """Takes `user`'s role on `project` away (a project admin)."""
        project = v.name(project, "project name")
        user = v.name(user, "user name")
        m = t.memberships.c
        with self._tx() as conn:
            project_id = self._project_id(conn, project, need="admin")
            user_row = self._user_row(conn, user)
            held = conn.execute(
                select(m.role).where(m.project_id == project_id, m.user_id == user_row.id)
            ).scalar()
            if held is None:
                raise NotFound(f"user {user!r} is not a member of project {project!r}")
            if held == "admin":
                self._keep_an_admin(conn, project_id, project, user_row.id)
            conn.execute(
                delete(t.memberships).where(m.project_id == project_id, m.user_id == user_row.id)
            )
            self._audit(
                conn,
                "member.removed",
                "membership",
                f"{project}/{user}",
                project=project,
                before={"role": held},
            )

    # -- helpers -------------------------------------------------------------------

    def _user_row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            raise NotFound(f"user {name!r} does not exist: a server admin adds users", user=name)
        return row

    def _token_owner(self, conn: Connection, user: str | None, what: str) -> Any:
        """The user whose tokens are meant: `user`, or the signed-in one; another user's
        tokens need a server admin."""
        principal = current_principal()
        if user is None:
            if principal is None:
                raise InvalidArgument("name the user: the embedded store has no signed-in user")
            return self._user_row(conn, principal.name)
        user = v.name(user, "user name")
        if principal is not None and principal.name != user and not principal.server_admin:
            raise Forbidden(f"{what} needs a server admin; user {principal.name!r} is not one")
        return self._user_row(conn, user)

    def _insert_user(
        self, conn: Connection, name: str, *, server_admin: bool, service: bool = False, **more: Any
    ) -> int:
        user_id = conn.execute(
            t.users.insert()
            .values(
                name=name,
                server_admin=server_admin,
                disabled=False,
                created_at=now(),
                service=service,
                **more,
            )
            .returning(t.users.c.id)
        ).scalar_one()
        after: dict[str, Any] = {"server_admin": server_admin}
        if service:
            after["service"] = True
        if more.get("oidc_issuer"):
            after["issuer"] = more["oidc_issuer"]
        self._audit(conn, "user.created", "user", name, after=after)
        return int(user_id)

    def _insert_token(
        self,
        conn: Connection,
        user_id: int,
        user: str,
        name: str,
        secret: str,
        expires_at: float | None,
        *,
        project: str | None = None,
        role: str | None = None,
    ) -> int:
        prefix = secret[:PREFIX_LENGTH]
        token_id = conn.execute(
            t.api_tokens.insert()
            .values(
                user_id=user_id,
                name=name,
                prefix=prefix,
                token_hash=hash_token(secret),
                created_at=now(),
                expires_at=expires_at,
                project=project,
                role=role,
            )
            .returning(t.api_tokens.c.id)
        ).scalar_one()
        after: dict[str, Any] = {
            "user": user,
            "name": name,
            "prefix": prefix,
            "expires_at": expires_at,
        }
        if project is not None:
            after.update(project=project, role=role)
        self._audit(conn, "token.created", "token", token_id, after=after)
        return int(token_id)

    def _check_scope(self, conn: Connection, owner: Any, project: str, role: str) -> None:
        """A scope must be one its user can use: a project they hold `role` on (a server
        admin holds every role)."""
        found = conn.execute(select(t.projects.c.id).where(t.projects.c.name == project)).scalar()
        if found is None:
            raise NotFound(f"project {project!r} does not exist", project=project)
        if owner.server_admin:
            return
        m = t.memberships.c
        held = conn.execute(
            select(m.role).where(m.project_id == found, m.user_id == owner.id)
        ).scalar()
        if held is None or rank(held) < rank(role):
            has = f"is {held} of" if held else "is not a member of"
            raise Conflict(
                f"user {owner.name!r} {has} project {project!r}, so a token scoped to {role} "
                f"there could do nothing: registrum members add {project} {owner.name} {role}"
            )

    def _keep_an_admin(self, conn: Connection, project_id: int, project: str, user_id: int) -> None:
        m = t.memberships.c
        others = conn.execute(
            select(func.count()).where(
                m.project_id == project_id, m.role == "admin", m.user_id != user_id
            )
        ).scalar_one()
        if not others:
            raise Conflict(
                f"that would leave project {project!r} without an admin; make another member "
                "admin first"
            )

    def _membership(
        self, conn: Connection, project_id: int, project: str, user_row: Any
    ) -> Membership:
        m = t.memberships.c
        row = conn.execute(
            select(m.role, m.created_at, m.source).where(
                m.project_id == project_id, m.user_id == user_row.id
            )
        ).one()
        return Membership(
            project=project,
            user=user_row.name,
            role=row.role,
            created_at=row.created_at,
            source=row.source,
        )
