"""Signing in through an identity provider: users made on first sign-in, the roles their
groups give, browser sessions, and sign-ins under way.

The server (`registrum.server.oidc`) talks to the provider and verifies what it says; this
layer keeps what follows from it. Every method here is the server's own: it acts before
anyone is signed in, so none checks a caller's rights.

Roles from groups are memberships with a `source` ("groups: vision-team"): each sign-in
replaces them with what the role map gives now. A role given by hand (`source` None) is
never changed by groups. A role on every project (`"*"`) is kept on the user and given to
projects made later as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select, update

from registrum import validation as v
from registrum.entities import ApiToken, User
from registrum.errors import Conflict, Forbidden, InvalidArgument, Unauthorized
from registrum.store import schema as t
from registrum.store._base import now
from registrum.store.acting import Principal, rank
from registrum.store.audit_chain import acting_as
from registrum.store.governance.access import AccessMixin, _token, _user, hash_token, new_token

SESSION_PREFIX = "rgs_"
MAX_GROUPS = 1000  # groups kept from one sign-in; a larger claim is cut, and says so


@dataclass(frozen=True)
class GroupGrants:
    """What the server's role map gives a user for their groups.

    Attributes:
        server_admin: whether a group makes them a server admin.
        projects: project name -> (role, source), for the projects the map names.
        every: (role, source) on every project (`"*"`), or None.
    """

    server_admin: bool = False
    projects: dict[str, tuple[str, str]] = field(default_factory=dict)
    every: tuple[str, str] | None = None


class IdentityMixin(AccessMixin):
    # -- users from the identity provider ------------------------------------------------

    def sign_in_external(
        self,
        *,
        issuer: str,
        subject: str,
        name: str,
        email: str | None,
        groups: list[str],
        grants: GroupGrants,
    ) -> User:
        """The user that `issuer` knows as `subject`, made on first sign-in under `name`,
        with the roles `grants` gives applied. Refused: a disabled user (`Unauthorized`), a
        service account, and a name already held by a user from elsewhere (`Conflict`)."""
        name = v.name(name, "user name")
        if not isinstance(subject, str) or not 0 < len(subject) <= 255:
            raise InvalidArgument("the identity provider's subject must be 1 to 255 characters")
        groups = [g for g in groups if isinstance(g, str)][:MAX_GROUPS]
        u = t.users.c
        with acting_as(name), self._tx() as conn:
            row = conn.execute(
                select(t.users).where(u.oidc_issuer == issuer, u.oidc_subject == subject)
            ).first()
            if row is None:
                held = conn.execute(select(t.users).where(u.name == name)).first()
                if held is not None and held.service:
                    raise Forbidden(f"{name!r} is a service account: it cannot sign in")
                if held is not None:  # a service account is never linked to a provider
                    raise Conflict(
                        f"user name {name!r} is taken by a user who does not sign in through "
                        f"{issuer}; a server admin must free the name before they can sign in"
                    )
                user_id = self._insert_user(
                    conn, name, server_admin=False, oidc_issuer=issuer, oidc_subject=subject
                )
                row = conn.execute(select(t.users).where(u.id == user_id)).one()
            if row.disabled:
                raise Unauthorized(f"user {row.name!r} is disabled: ask a server admin")
            conn.execute(
                update(t.users).where(u.id == row.id).values(email=email, groups=json.dumps(groups))
            )
            self._apply_grants(conn, row, grants)
            return _user(conn.execute(select(t.users).where(u.id == row.id)).one())

    def _apply_grants(self, conn: Connection, row: Any, grants: GroupGrants) -> None:
        u, m, p = t.users.c, t.memberships.c, t.projects.c
        if grants.server_admin != bool(row.server_admin) and (
            grants.server_admin or row.admin_by_groups
        ):
            conn.execute(
                update(t.users)
                .where(u.id == row.id)
                .values(server_admin=grants.server_admin, admin_by_groups=grants.server_admin)
            )
            self._audit(
                conn,
                "user.changed",
                "user",
                row.name,
                before={"server_admin": bool(row.server_admin)},
                after={"server_admin": grants.server_admin, "source": "groups"},
            )
        every = (
            None if grants.every is None else {"role": grants.every[0], "source": grants.every[1]}
        )
        conn.execute(
            update(t.users)
            .where(u.id == row.id)
            .values(groups_all=None if every is None else json.dumps(every))
        )
        projects = {r.name: int(r.id) for r in conn.execute(select(p.id, p.name))}
        wanted: dict[int, tuple[str, str]] = {}
        if grants.every is not None:
            wanted = dict.fromkeys(projects.values(), grants.every)
        for project, (role, source) in grants.projects.items():
            project_id = projects.get(project)
            if project_id is None:
                continue
            other = wanted.get(project_id)
            if other is None or rank(role) >= rank(other[0]):
                wanted[project_id] = (role, source)
        names = {i: n for n, i in projects.items()}
        held = {
            int(r.project_id): r
            for r in conn.execute(select(m.project_id, m.role, m.source).where(m.user_id == row.id))
        }
        for project_id, had in held.items():
            if had.source is None or project_id in wanted:
                continue
            conn.execute(
                delete(t.memberships).where(m.project_id == project_id, m.user_id == row.id)
            )
            self._member_event(conn, "member.removed", names[project_id], row.name, had, None)
        for project_id, (role, source) in wanted.items():
            found = held.get(project_id)
            if found is None:
                conn.execute(
                    t.memberships.insert().values(
                        project_id=project_id,
                        user_id=row.id,
                        role=role,
                        created_at=now(),
                        source=source,
                    )
                )
                action = "member.added"
            elif found.source is None or (found.role, found.source) == (role, source):
                continue  # given by hand, or unchanged
            else:
                conn.execute(
                    update(t.memberships)
                    .where(m.project_id == project_id, m.user_id == row.id)
                    .values(role=role, source=source)
                )
                action = "member.changed"
            self._member_event(conn, action, names[project_id], row.name, found, (role, source))

    def issue_token(
        self, user: str, *, name: str, expires_at: float, service: bool = False
    ) -> ApiToken:
        """A token for `user`, made by the server itself for a sign-in (`registrum login`)
        or, with `service` (`user` must be a service account), a token exchange: no
        caller's rights are checked."""
        user = v.name(user, "user name")
        with acting_as(user), self._tx() as conn:
            row = self._user_row(conn, user)
            if row.disabled:
                raise Unauthorized(f"user {user!r} is disabled: ask a server admin")
            if service and not row.service:
                raise Conflict(
                    f"user {user!r} is not a service account; token exchange gives tokens of "
                    "service accounts only (registrum users add NAME --service)"
                )
            secret = new_token()
            token_id = self._insert_token(conn, row.id, user, name, secret, expires_at)
            found = conn.execute(select(t.api_tokens).where(t.api_tokens.c.id == token_id)).one()
            return _token(found, user, secret)

    # -- browser sessions ----------------------------------------------------------------

    def create_session(self, user: str, *, ttl: float) -> str:
        """A browser session for `user`, `ttl` seconds long: its secret, for the cookie."""
        secret = SESSION_PREFIX + new_token()[4:]
        stamp = now()
        with self._tx() as conn:
            row = self._user_row(conn, user)
            conn.execute(
                t.sessions.insert().values(
                    user_id=row.id,
                    token_hash=hash_token(secret),
                    created_at=stamp,
                    expires_at=stamp + ttl,
                )
            )
            conn.execute(delete(t.sessions).where(t.sessions.c.expires_at <= stamp))
        return secret

    def authenticate_session(self, secret: str) -> Principal:
        """The user of a browser session; `Unauthorized` when it is unknown, has ended or
        expired, or its user is disabled."""
        s, u = t.sessions.c, t.users.c
        with self._read() as conn:
            row = conn.execute(
                select(s.expires_at, s.user_id, u.name, u.server_admin, u.disabled)
                .join(t.users, u.id == s.user_id)
                .where(s.token_hash == hash_token(secret))
            ).first()
        if row is None or row.expires_at <= now():
            raise Unauthorized("your session has ended: sign in again")
        if row.disabled:
            raise Unauthorized(f"user {row.name!r} is disabled: ask a server admin")
        return Principal(
            user_id=int(row.user_id), name=row.name, server_admin=bool(row.server_admin)
        )

    def end_session(self, secret: str) -> bool:
        """Ends a browser session (signing out); whether there was one."""
        with self._tx() as conn:
            gone = conn.execute(
                delete(t.sessions).where(t.sessions.c.token_hash == hash_token(secret))
            ).rowcount
        return bool(gone)

    # -- sign-ins under way ----------------------------------------------------------------

    def start_login(self, state: str, kind: str, data: dict[str, Any], *, ttl: float) -> None:
        """Keeps what a sign-in under way must remember (nonce, PKCE verifier, where to go
        after), under the sha256 of its `state`, for `ttl` seconds."""
        stamp = now()
        with self._tx() as conn:
            conn.execute(delete(t.login_requests).where(t.login_requests.c.expires_at <= stamp))
            conn.execute(
                t.login_requests.insert().values(
                    state_hash=hash_token(state),
                    kind=kind,
                    data=json.dumps(data),
                    created_at=stamp,
                    expires_at=stamp + ttl,
                )
            )

    def take_login(self, state: str, kind: str) -> dict[str, Any] | None:
        """What `start_login` kept for `state`, taken (a second call gets None): None too
        when it is unknown, of another kind, or expired."""
        with self._tx() as conn:
            row = self._login_row(conn, state)
            if row is None:
                return None
            taken = conn.execute(
                delete(t.login_requests).where(t.login_requests.c.state_hash == row.state_hash)
            ).rowcount
        return _login_data(row, kind) if taken else None

    def peek_login(self, state: str, kind: str) -> dict[str, Any] | None:
        """What `start_login` kept for `state`, left in place (a device sign-in is polled)."""
        with self._read() as conn:
            row = self._login_row(conn, state)
        return None if row is None else _login_data(row, kind)

    def _login_row(self, conn: Connection, state: str) -> Any:
        return conn.execute(
            select(t.login_requests).where(t.login_requests.c.state_hash == hash_token(state))
        ).first()


def _login_data(row: Any, kind: str) -> dict[str, Any] | None:
    """What a sign-in under way kept, unless it is of another kind or has expired."""
    if row.kind != kind or row.expires_at <= now():
        return None
    data: dict[str, Any] = json.loads(row.data)
    return data
