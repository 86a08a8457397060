"""Promotion with approval: a model's policy protects aliases, which then move only through a
request that enough reviewers approve and whose gates pass; every alias move is kept.

A policy names the protected aliases, the role that may approve (default reviewer), how many
approvals a request needs (default 1), whether requesters may approve their own request
(default no), and gates. Moving a protected alias directly (`set_alias`, `aliases=` at
registration) moves nothing and opens a request for the move instead (`set_alias` raises
`ApprovalRequired` naming it). Whether an alias is protected is `protected_aliases`'s answer
alone. A request remembers the version the alias pointed at when it opened; the approval
that completes it moves the alias as a compare-and-set against that version, in the
transaction that marks the request approved, so two concurrent approvals move the alias once.
Voters are told apart by the acting user's name (the embedded store's one user is `local`).

Gates, checked before the approval that would complete a request, are pure functions in
`registrum.store.governance.gates`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from registrum import validation as v
from registrum.entities import ROLES, AliasMove, Policy, PromotionRequest, _Unset
from registrum.errors import (
    AliasMoved,
    AliasNotFound,
    ApprovalRequired,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
)
from registrum.store import schema as t
from registrum.store._base import StoreBase, dumps, loads, now
from registrum.store.audit_chain import current_actor
from registrum.store.governance.gates import check_gate, evaluate
from registrum.store.idempotency import Claim, IdempotencyMixin, claim
from registrum.store.registry.evaluations import EvaluationsMixin
from registrum.store.registry.moves import AliasMovesMixin

STATES = ("open", "approved", "rejected", "cancelled", "stale")
DEFAULT_POLICY: dict[str, Any] = {
    "protected": [],
    "approver_role": "reviewer",
    "approvals_needed": 1,
    "allow_self_approval": False,
    "gates": [],
}


class ApprovalsMixin(AliasMovesMixin, EvaluationsMixin, IdempotencyMixin, StoreBase):
    # -- policy ----------------------------------------------------------------------

    def _protected_of(self, name: str, aliases: Sequence[str]) -> list[str]:
        """Which of `aliases` the policy of model `name` protects (none when it does not exist)."""
        if not aliases:
            return []
        with self._read() as conn:
            model = conn.execute(
                select(t.registered_models.c.id).where(t.registered_models.c.name == name)
            ).scalar()
            protected = [] if model is None else protected_aliases(conn, int(model))
        return [a for a in aliases if a in protected]

    def _open_for_move(
        self,
        name: str,
        alias: str,
        version: int,
        expected_version: int | _Unset | None,
        idempotency_key: str | None,
    ) -> AliasMoved | ApprovalRequired:
        """A direct move of a protected alias: opens a promotion request for it and returns
        the `ApprovalRequired` naming it (`request_id`) for `set_alias` to raise (or the
        `AliasMoved` of a compare-and-set that already failed); retried with
        the same `idempotency_key`, it names the same request instead of opening another."""
        if not isinstance(expected_version, _Unset):
            with self._read() as conn:
                current = self._alias_version(conn, self._model_row(conn, name).id, alias)
            if current != expected_version:
                return AliasMoved(
                    f"{name}@{alias} points at version {current}, not {expected_version}; "
                    "read it again and retry"
                )
        comment = "opened by a move of the alias"
        keyed = claim(idempotency_key, "alias.set", None)
        return self._opened(
            name,
            alias,
            version,
            comment,
            keyed and keyed.follow_up("request", *_open_request(name, alias, version, comment)),
        )

    def _open_for_registration(
        self, name: str, protected: Sequence[str], version: int, idempotency_key: str | None
    ) -> None:
        """A registration that asked for protected aliases: one promotion request per alias;
        retried with the same `idempotency_key`, it opens each request once."""
        keyed = claim(idempotency_key, "model_version.register", None)
        comment = "opened by the registration"
        for alias in protected:
            step = _open_request(name, alias, version, comment)
            self._request_promotion(
                name,
                alias,
                version,
                comment,
                keyed and keyed.follow_up(f"request:{alias}", *step),
            )

    def _opened(
        self, name: str, alias: str, version: int, comment: str, keyed: Claim | None
    ) -> ApprovalRequired:
        request = self._request_promotion(name, alias, version, comment, keyed)
        needed = request.get("approvals_needed")
        return ApprovalRequired(
            f"{name}@{alias} is protected by the model's policy: it did not move; the move "
            f"opened request {request['id']}, which moves it once approved"
            + (f" ({needed} approval(s) needed)" if needed else "")
            + f": registrum requests show {request['id']}",
            model=name,
            alias=alias,
            request_id=request["id"],
        )

    def set_policy(
        self,
        name: str,
        *,
        protected: Sequence[str] = (),
        approver_role: str = "reviewer",
        approvals_needed: int = 1,
        allow_self_approval: bool = False,
        gates: Sequence[Mapping[str, Any]] = (),
        idempotency_key: str | None = None,
    ) -> Policy:
        """Sets (replaces) a model's policy; needs admin on the model's project."""
        name = v.name(name, "model name")
        if isinstance(protected, str) or not isinstance(protected, Sequence):
            raise InvalidArgument("protected must be a list of alias names, e.g. ['champion']")
        aliases = sorted({v.alias(a) for a in protected})
        if approver_role not in ROLES[1:]:
            raise InvalidArgument(
                f"approver_role {approver_role!r} must be one of {', '.join(ROLES[1:])}"
            )
        needed = v.integer(approvals_needed, "approvals_needed", minimum=1)
        if not isinstance(allow_self_approval, bool):
            raise InvalidArgument("allow_self_approval must be true or false")
        if isinstance(gates, (str, Mapping)) or not isinstance(gates, Sequence):
            raise InvalidArgument("gates must be a list of gate objects")
        checked = [check_gate(g, i) for i, g in enumerate(gates)]
        policy = {
            "protected": aliases,
            "approver_role": approver_role,
            "approvals_needed": needed,
            "allow_self_approval": allow_self_approval,
            "gates": checked,
        }
        keyed = claim(idempotency_key, "policy.set", [name, policy])
        with self._tx() as conn:
            answer = self._recall(conn, keyed)
            if answer is not None:
                return Policy.from_dict(answer.body)
            model = self._model_row(conn, name, need="admin")
            before = self._policy(conn, model.id)
            values = {
                "protected": dumps(aliases),
                "approver_role": approver_role,
                "approvals_needed": needed,
                "allow_self_approval": allow_self_approval,
                "gates": dumps(checked),
                "updated_by": current_actor(),
                "updated_at": now(),
            }
            stmt = self._insert(t.model_policies)
            conn.execute(
                stmt.values(model_id=model.id, **values).on_conflict_do_update(
                    index_elements=["model_id"], set_=values
                )
            )
            self._audit(
                conn,
                "policy.updated",
                "model",
                name,
                project=self._project_name(conn, model.project_id),
                before=before,
                after=policy,
            )
            result = {"model": name, **self._policy(conn, model.id)}
            self._remember(conn, keyed, 200, result)
            return Policy.from_dict(result)

    def get_policy(self, name: str) -> Policy:
        """A model's policy; a model without one has the default (nothing protected)."""
        name = v.name(name, "model name")
        with self._read() as conn:
            model = self._model_row(conn, name, need="viewer")
            return Policy.from_dict({"model": name, **self._policy(conn, model.id)})

    # -- requests --------------------------------------------------------------------

    def request_promotion(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        comment: str | None = None,
        idempotency_key: str | None = None,
    ) -> PromotionRequest:
        """Opens a request to point protected `alias` at `version`; needs editor. Retried with
        the same `idempotency_key`, it returns the request the first call opened."""
        keyed = claim(idempotency_key, *_open_request(name, alias, version, comment))
        return PromotionRequest.from_dict(
            self._request_promotion(name, alias, version, comment, keyed)
        )

    def _request_promotion(
        self, name: str, alias: str, version: int, comment: str | None, keyed: Claim | None
    ) -> dict[str, Any]:
        name = v.name(name, "model name")
        v.alias(alias)
        v.integer(version, "version", minimum=1)
        v.optional_text(comment, "comment")
        # Gates are read before the write, so the answer kept for a retry holds them.
        with self._read() as conn:
            gates = self._policy(conn, self._model_row(conn, name, need="editor").id)["gates"]
        evaluated = self._evaluate_gates(name, gates, alias, version)
        with self._tx() as conn:
            answer = self._recall(conn, keyed)
            if answer is not None:
                replayed: dict[str, Any] = answer.body
                return replayed
            model = self._model_row(conn, name, need="editor")
            self._resolve(conn, name, version)
            policy = self._policy(conn, model.id)
            if alias not in policy["protected"]:
                raise InvalidArgument(
                    f"{name}@{alias} is not protected by the model's policy: move it directly "
                    f"(client.set_alias({name!r}, {alias!r}, {version}))"
                )
            current = self._alias_version(conn, model.id, alias)
            if current == version:
                raise InvalidArgument(f"{name}@{alias} already points at version {version}")
            request_id = conn.execute(
                t.promotion_requests.insert()
                .values(
                    model_id=model.id,
                    alias=alias,
                    version=version,
                    from_version=current,
                    state="open",
                    requested_by=current_actor(),
                    comment=comment,
                    created_at=now(),
                )
                .returning(t.promotion_requests.c.id)
            ).scalar_one()
            self._audit(
                conn,
                "approval.requested",
                "promotion_request",
                str(request_id),
                project=self._project_name(conn, model.project_id),
                after={
                    "model": name,
                    "alias": alias,
                    "version": version,
                    "from_version": current,
                    "comment": comment,
                },
            )
            record = self._request_record(conn, int(request_id))
            record["gates"] = (
                evaluated
                if policy["gates"] == gates
                else self._evaluate_gates(name, policy["gates"], alias, version)
            )
            self._remember(conn, keyed, 201, record)
        return record

    def list_requests(
        self,
        name: str,
        *,
        state: str | None = None,
        alias: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PromotionRequest]:
        """A model's promotion requests, newest first; open ones show their gates live."""
        name = v.name(name, "model name")
        if state is not None and state not in STATES:
            raise InvalidArgument(f"state {state!r} is not one of {', '.join(STATES)}")
        r = t.promotion_requests.c
        with self._read() as conn:
            model = self._model_row(conn, name, need="viewer")
            query = select(r.id).where(r.model_id == model.id).order_by(r.id.desc())
            if state is not None:
                query = query.where(r.state == state)
            if alias is not None:
                query = query.where(r.alias == v.alias(alias))
            ids = conn.execute(self._window(query, limit, offset)).scalars().all()
            records = [self._request_record(conn, int(i)) for i in ids]
            gates = self._policy(conn, model.id)["gates"]
        return [PromotionRequest.from_dict(self._with_live_gates(rec, gates)) for rec in records]

    def get_request(self, request_id: int) -> PromotionRequest:
        """One promotion request, with its votes and its gates (live while it is open)."""
        v.integer(request_id, "request id", minimum=1)
        with self._read() as conn:
            row = self._request_row(conn, request_id)
            self._require(conn, row.project_id, "viewer")
            record = self._request_record(conn, request_id)
            gates = self._policy(conn, row.model_id)["gates"]
        return PromotionRequest.from_dict(self._with_live_gates(record, gates))

    def approve_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest:
        """Approves a request (needs the policy's approver role); the approval that reaches the
        policy's count moves the alias, if every gate passes (`Conflict` names those that
        fail, and nothing changes). Retried with the same `idempotency_key`, it returns the
        first answer instead of `Conflict` (already voted)."""
        return PromotionRequest.from_dict(
            self._decide(request_id, "approve", comment, idempotency_key)
        )

    def reject_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest:
        """Rejects a request (needs the policy's approver role); the alias stays."""
        return PromotionRequest.from_dict(
            self._decide(request_id, "reject", comment, idempotency_key)
        )

    def cancel_request(
        self, request_id: int, *, comment: str | None = None, idempotency_key: str | None = None
    ) -> PromotionRequest:
        """Cancels an open request: its requester, or an admin of the model's project."""
        return PromotionRequest.from_dict(
            self._decide(request_id, "cancel", comment, idempotency_key)
        )

    def alias_history(
        self, name: str, alias: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[AliasMove]:
        """Every move of a model's aliases (or of one), oldest first: who, when, from which
        version to which (None: unset or deleted), and the request that approved it."""
        name = v.name(name, "model name")
        h = t.alias_history.c
        with self._read() as conn:
            model = self._model_row(conn, name, need="viewer")
            query = select(t.alias_history).where(h.model_id == model.id).order_by(h.id)
            if alias is not None:
                query = query.where(h.alias == v.alias(alias))
            rows = conn.execute(self._window(query, limit, offset)).all()
        return [
            AliasMove(
                model=name,
                alias=r.alias,
                from_version=r.from_version,
                to_version=r.to_version,
                actor=r.actor,
                at=r.at,
                request_id=r.request_id,
            )
            for r in rows
        ]

    # -- deciding --------------------------------------------------------------------

    def _decide(
        self, request_id: int, action: str, comment: str | None, key: str | None
    ) -> dict[str, Any]:
        v.integer(request_id, "request id", minimum=1)
        v.optional_text(comment, "comment")
        keyed = claim(key, f"request.{action}", [request_id, comment])
        # Gates are read first, outside the write transaction; the move itself is a
        # compare-and-set against the version they were compared with.
        with self._read() as conn:
            row = self._request_row(conn, request_id)
            self._require(conn, row.project_id, "viewer")
            policy = self._policy(conn, row.model_id)
        gates = self._evaluate_gates(row.model, policy["gates"], row.alias, row.version)
        actor = current_actor()
        r = t.promotion_requests.c
        with self._tx() as conn:
            answer = self._recall(conn, keyed)
            if answer is not None:
                replayed: dict[str, Any] = answer.body
                return replayed
            # The row lock (PostgreSQL) or the write lock (SQLite) serialises decisions.
            locked = conn.execute(
                select(t.promotion_requests).where(r.id == request_id).with_for_update()
            ).one()
            policy = self._policy(conn, row.model_id)
            project = self._project_name(conn, row.project_id)
            if action == "cancel":
                # Its requester (who may still request: an editor), or a project admin.
                own = actor == locked.requested_by
                self._require(conn, row.project_id, "editor" if own else "admin", name=project)
            else:
                self._require(conn, row.project_id, policy["approver_role"], name=project)
            if locked.state == "stale":
                raise Conflict(
                    f"request {request_id} is stale: {locked.decision_comment}",
                    request_id=request_id,
                    state=locked.state,
                )
            if locked.state != "open":
                raise Conflict(
                    f"request {request_id} is already {locked.state}; open a new request "
                    f"to move {row.model}@{row.alias}",
                    request_id=request_id,
                    state=locked.state,
                )
            self_approval = action == "approve" and actor == locked.requested_by
            if self_approval and not policy["allow_self_approval"]:
                raise Forbidden(
                    f"{actor!r} opened request {request_id} and may not approve it: "
                    "another approver must, or a project admin can allow self-approval "
                    "in the model's policy",
                    needed=policy["approver_role"],
                )
            if action != "cancel":
                self._vote(conn, request_id, actor, action, comment)
            record = self._request_record(conn, request_id)
            if action == "approve" and record["approvals"] < policy["approvals_needed"]:
                self._audit(
                    conn,
                    "approval.voted",
                    "promotion_request",
                    str(request_id),
                    project=project,
                    after={"model": row.model, "alias": row.alias, "vote": "approve"},
                )
                record["gates"] = gates
                self._remember(conn, keyed, 200, record)
                return record
            failing = [g for g in gates if not g["passed"]]
            if action == "approve" and failing:
                raise Conflict(
                    f"request {request_id} has its approvals but gates fail: "
                    + "; ".join(g["detail"] for g in failing)
                    + ". Fix these, then approve again",
                    request_id=request_id,
                    gates=gates,
                )
            state = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}[action]
            done = conn.execute(
                update(t.promotion_requests)
                .where(r.id == request_id, r.state == "open")
                .values(
                    state=state,
                    decided_by=actor,
                    decided_at=now(),
                    decision_comment=comment,
                    gates=dumps(gates),
                )
            ).rowcount
            if done != 1:
                raise Conflict(f"request {request_id} was decided concurrently; read it again")
            if state == "approved":
                self._approve_move(conn, locked, row.model, request_id)
            self._audit(
                conn,
                "approval.decided",
                "promotion_request",
                str(request_id),
                project=project,
                before={"state": "open"},
                after={
                    "model": row.model,
                    "alias": row.alias,
                    "version": row.version,
                    "decision": state,
                    "comment": comment,
                    "gates": gates,
                },
            )
            decided = self._request_record(conn, request_id)
            self._remember(conn, keyed, 200, decided)
            return decided

    def _vote(
        self, conn: Connection, request_id: int, actor: str, action: str, comment: str | None
    ) -> None:
        c = t.promotion_votes.c
        voted = conn.execute(
            select(c.decision).where(c.request_id == request_id, c.voter == actor)
        ).scalar()
        if voted is not None:
            raise Conflict(f"{actor!r} already voted {voted} on request {request_id}")
        conn.execute(
            t.promotion_votes.insert().values(
                request_id=request_id,
                voter=actor,
                decision=action,
                comment=comment,
                at=now(),
            )
        )

    def _approve_move(self, conn: Connection, locked: Any, name: str, request_id: int) -> None:
        """Points the alias at the requested version, only if it still points where it did
        when the request opened."""
        version_id = self._version_id_or_none(conn, locked.model_id, locked.version)
        if version_id is None:  # versions are never deleted; kept for a clear error
            raise NotFound(f"model {name!r} has no version {locked.version}")
        expected: int | None = None
        if locked.from_version is not None:
            expected = self._version_id_or_none(conn, locked.model_id, locked.from_version)
        self._move_alias(
            conn,
            locked.model_id,
            locked.alias,
            version_id,
            expected,
            label=f"{name}@{locked.alias} (request {request_id}: open a new request)",
            request_id=request_id,
        )

    # -- gates -----------------------------------------------------------------------

    def _with_live_gates(self, record: dict[str, Any], gates: list[Any]) -> dict[str, Any]:
        if record["state"] == "open":
            record["gates"] = self._evaluate_gates(
                record["model"], gates, record["alias"], record["version"]
            )
        return record

    def _evaluate_gates(
        self, name: str, gates: list[dict[str, Any]], alias: str, version: int
    ) -> list[dict[str, Any]]:
        """Each gate with `passed` and a `detail` that says why (see `gates.evaluate`)."""
        if not gates:
            return []
        with self._read() as conn:
            candidate = self._load_version(conn, self._resolve(conn, name, version, need="viewer"))
            try:
                current: int | None = self._load_version(
                    conn, self._resolve(conn, name, alias, need="viewer")
                ).version
            except AliasNotFound:
                current = None
        history = None
        if any(g["type"] == "evaluation" for g in gates):
            history = self._evaluation_history(name)
        return evaluate(
            gates, tags=candidate.tags, history=history, version=version, current=current
        )

    # -- reading ---------------------------------------------------------------------

    def _policy(self, conn: Connection, model_id: int) -> dict[str, Any]:
        row = conn.execute(
            select(t.model_policies).where(t.model_policies.c.model_id == model_id)
        ).first()
        if row is None:
            return {**DEFAULT_POLICY, "protected": [], "gates": []}
        return {
            "protected": loads(row.protected),
            "approver_role": row.approver_role,
            "approvals_needed": row.approvals_needed,
            "allow_self_approval": bool(row.allow_self_approval),
            "gates": loads(row.gates),
        }

    def _alias_version(self, conn: Connection, model_id: int, alias: str) -> int | None:
        a, mv = t.aliases.c, t.model_versions.c
        found = conn.execute(
            select(mv.version)
            .join(t.aliases, a.version_id == mv.id)
            .where(a.model_id == model_id, a.alias == alias)
        ).scalar()
        return None if found is None else int(found)

    def _request_row(self, conn: Connection, request_id: int) -> Any:
        r, m = t.promotion_requests.c, t.registered_models.c
        row = conn.execute(
            select(r.id, r.model_id, r.alias, r.version, m.project_id, m.name.label("model"))
            .join(t.registered_models, m.id == r.model_id)
            .where(r.id == request_id)
        ).first()
        if row is None:
            raise NotFound(
                f"promotion request {request_id} does not exist: list a model's requests with "
                "registrum requests list MODEL",
                request_id=request_id,
            )
        return row

    def _request_record(self, conn: Connection, request_id: int) -> dict[str, Any]:
        r, m = t.promotion_requests, t.registered_models.c
        row = conn.execute(
            select(r, m.name.label("model"), t.projects.c.name.label("project"))
            .join(t.registered_models, m.id == r.c.model_id)
            .join(t.projects, t.projects.c.id == m.project_id)
            .where(r.c.id == request_id)
        ).one()
        c = t.promotion_votes.c
        votes = [
            {"voter": x.voter, "decision": x.decision, "comment": x.comment, "at": x.at}
            for x in conn.execute(
                select(t.promotion_votes).where(c.request_id == request_id).order_by(c.at)
            )
        ]
        policy = self._policy(conn, row.model_id)
        return {
            "id": row.id,
            "model": row.model,
            "project": row.project,
            "alias": row.alias,
            "version": row.version,
            "from_version": row.from_version,
            "state": row.state,
            "requested_by": row.requested_by,
            "comment": row.comment,
            "created_at": row.created_at,
            "decided_by": row.decided_by,
            "decided_at": row.decided_at,
            "decision_comment": row.decision_comment,
            "votes": votes,
            "approvals": sum(1 for x in votes if x["decision"] == "approve"),
            "approvals_needed": policy["approvals_needed"],
            "gates": loads(row.gates) or [],
        }


def _open_request(name: str, alias: str, version: int, comment: str | None) -> tuple[str, Any]:
    """The operation and request of opening a promotion request, as a claim names them."""
    return "request.open", [name, alias, version, comment]


def protected_aliases(conn: Connection, model_id: int) -> list[str]:
    """The aliases a model's policy protects: they move only through an approved promotion
    request. The one place the rule is read; every alias move asks it."""
    protected = conn.execute(
        select(t.model_policies.c.protected).where(t.model_policies.c.model_id == model_id)
    ).scalar()
    return [] if protected is None else list(loads(protected))
