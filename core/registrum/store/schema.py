"""The tables of the store (SQLAlchemy Core); the migrations build exactly these.

Times are UTC epoch seconds as doubles. Metric points are stored columnar: one
row per (run, key, batch) holding packed little-endian arrays of steps, values
and timestamps, so a million-point history is a few dozen rows to read.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ID = String(64)
NAME = String(256)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", Double, nullable=False),
    # Soft-deleted (restorable) when set; its runs and artifacts carry the same stamp.
    Column("deleted_at", Double),
    # Retention (see tracking/retention.py): checkpoints kept per run beyond the best, and
    # seconds after which the artifacts of a run that registered nothing expire.
    Column("keep_checkpoints", Integer),
    Column("artifact_ttl", Double),
)

# A project's tags (an MLflow experiment's tags, its original name among them).
project_tags = Table(
    "project_tags",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("value", Text, nullable=False),
)

# Interned metric and param key names, one namespace per project. Search
# indexes hold the small integer, not the string.
keys = Table(
    "keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", NAME, nullable=False),
    UniqueConstraint("project_id", "name"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", NAME),
    Column("description", Text),
    Column("status", String(16), nullable=False),
    Column("job_type", NAME),
    Column("parent_id", ID, ForeignKey("runs.id")),
    Column("user", NAME),
    Column("host", NAME),
    Column("start_time", Double, nullable=False),
    Column("end_time", Double),
    Column("heartbeat_at", Double),
    Column("created_at", Double, nullable=False),
    Column("deleted_at", Double),  # soft-deleted (restorable) when set
    Index("ix_runs_project_start", "project_id", "start_time"),
    # Run search reads these in order when sorting by name or end time, so a
    # page stops after LIMIT matches instead of sorting the whole project.
    Index("ix_runs_project_name", "project_id", "name"),
    Index("ix_runs_project_end", "project_id", "end_time"),
    Index("ix_runs_parent", "parent_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key_id", Integer, ForeignKey("keys.id"), primary_key=True),
    # type: int, float, bool, str, null, json (lists, other values)
    Column("value_type", String(8), nullable=False),
    Column("value_json", Text, nullable=False),
    Column("value_num", Double),
    Column("value_str", String(250)),
    Column("updated_at", Double, nullable=False),
    # run_id makes these covering: run search walks them in value order and
    # gets each run id without a table read.
    Index("ix_params_key_num", "key_id", "value_num", "run_id"),
    Index("ix_params_key_str", "key_id", "value_str", "run_id"),
)

param_history = Table(
    "param_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("key_id", Integer, ForeignKey("keys.id"), nullable=False),
    Column("value_json", Text, nullable=False),
    Column("logged_at", Double, nullable=False),
    Index("ix_param_history_run_key", "run_id", "key_id"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_run_tags_key_value", "key", "run_id"),
)

metric_batches = Table(
    "metric_batches",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("points", Integer, nullable=False),
    Column("received_at", Double, nullable=False),
)

metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("key_id", Integer, ForeignKey("keys.id"), nullable=False),
    Column("points", Integer, nullable=False),
    Column("min_step", BigInteger, nullable=False),
    Column("max_step", BigInteger, nullable=False),
    Column("step_data", LargeBinary, nullable=False),
    Column("value_data", LargeBinary, nullable=False),
    Column("time_data", LargeBinary, nullable=False),
    Index("ix_metric_chunks_run_key", "run_id", "key_id", "id"),
)

# Kept current on every batch; NaN values are stored as NULL in `last_value`
# (SQLite cannot hold NaN) and never take part in min/max.
metric_summaries = Table(
    "metric_summaries",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key_id", Integer, ForeignKey("keys.id"), primary_key=True),
    Column("last_value", Double),
    Column("last_step", BigInteger, nullable=False),
    Column("last_time", Double, nullable=False),
    Column("min_value", Double),
    Column("max_value", Double),
    Column("points", BigInteger, nullable=False),
    # Covering for run search, like the params value indexes.
    Index("ix_metric_summaries_key_last", "key_id", "last_value", "run_id"),
)

# A series logged with decimal steps (an import from Neptune) stores each step as
# step × 10**scale in the int64 step columns; readers divide it back. No row: scale 0.
metric_step_scales = Table(
    "metric_step_scales",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key_id", Integer, ForeignKey("keys.id"), primary_key=True),
    Column("scale", Integer, nullable=False),
)

run_environments = Table(
    "run_environments",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)

code_versions = Table(
    "code_versions",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("commit", String(64)),
    Column("branch", NAME),
    Column("remote", String(1024)),
    Column("dirty", Boolean),
    Column("diff_sha256", String(64)),
    Column("data", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_code_versions_diff", "diff_sha256"),  # who may read a blob (blob_access.py)
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    # Last uploaded again or referenced: garbage collection spares a blob used since it began.
    Column("used_at", Double),
)

# Who uploaded which blob's bytes (see tracking/blob_access.py): an uploader may use the blob
# even where no project it can read references it.
blob_grants = Table(
    "blob_grants",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("created_at", Double, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", NAME, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", NAME, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("size", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("deleted_at", Double),  # soft-deleted: gone from reads, its number never reused
    UniqueConstraint("project_id", "name", "version"),
    Index("ix_artifacts_digest", "project_id", "name", "digest"),
    Index("ix_artifacts_run", "run_id"),
)

artifact_files = Table(
    "artifact_files",
    metadata,
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Index("ix_artifact_files_sha256", "sha256"),  # who may read a blob (blob_access.py)
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", NAME, nullable=False),
    Column("version", Integer, nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("schema", Text, nullable=False),
    Column("rows", BigInteger),
    Column("metadata", Text, nullable=False),
    Column("artifact_id", Integer, ForeignKey("artifacts.id")),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("project_id", "name", "version"),
    UniqueConstraint("project_id", "name", "fingerprint"),
    Index("ix_dataset_versions_artifact", "artifact_id"),
)

# What a run consumed: dataset versions, model versions, artifacts.
run_inputs = Table(
    "run_inputs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target_id", Integer, nullable=False),
    Column("role", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("run_id", "kind", "target_id", "role"),
    Index("ix_run_inputs_target", "kind", "target_id"),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", NAME, nullable=False, unique=True),
    Column("description", Text),
    # The last version number handed out: versions are never reused.
    Column("last_version", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    # A deleted model gives its name up (`name` becomes `deleted/<id>`, which no model name
    # can be) and keeps it here, so the name can be used again and the model restored.
    Column("deleted_at", Double),
    Column("deleted_name", NAME),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("value", Text, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), nullable=False),
    Column("flavor", NAME),
    Column("signature", Text),
    Column("metrics", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("description", Text),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("deleted_at", Double),  # soft-deleted: gone from reads, its number never reused
    UniqueConstraint("model_id", "version"),
    Index("ix_model_versions_run", "run_id"),
    Index("ix_model_versions_artifact", "artifact_id"),  # what stands on an artifact
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("value", Text, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", Double, nullable=False),
)

# The audit trail (see governance/audit.py): append-only, each event chained to the one before.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Double, nullable=False),
    Column("actor", NAME, nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", String(512), nullable=False),
    Column("project", NAME),
    Column("before", Text),
    Column("after", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_project", "project", "id"),
    Index("ix_audit_events_entity", "entity_type", "entity_id"),
)

# One row (id 1): the last event's id and hash, locked while an event is appended.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

# Webhooks (see governance/webhooks.py): subscriptions, the worker's place in the audit trail, and
# one delivery per (hook, event). The secret is kept as given: the worker signs with it.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", ID, primary_key=True),
    # The project the hook belongs to; for a hook on a model, the model's project.
    Column("project", NAME, nullable=False),
    Column("model", NAME),
    Column("url", String(2048), nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", String(256), nullable=False),
    # The audit event that created the hook: it is sent only events after it.
    Column("since_event", BigInteger, nullable=False),
    Column("created_by", NAME, nullable=False),
    Column("created_at", Double, nullable=False),
    Index("ix_webhooks_project", "project"),
    Index("ix_webhooks_model", "model"),
)

# One row (id 1): the last audit event the delivery worker has matched to hooks.
webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_event_id", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("webhook_id", ID, ForeignKey("webhooks.id"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("action", String(64), nullable=False),
    # pending, delivered or failed (every attempt used)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Double),
    Column("last_attempt_at", Double),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("delivered_at", Double),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("webhook_id", "event_id"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

# Access control (see governance/access.py): users, their API tokens (only a sha256 of each is
# kept), and their roles per project.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("server_admin", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    # A service account (a CI job, a deployment) never signs in interactively.
    Column("service", Boolean, nullable=False, server_default=false()),
    # Who the user is at the identity provider (OIDC sign-in): issuer and subject.
    Column("oidc_issuer", String(512)),
    Column("oidc_subject", String(255)),
    Column("email", String(320)),
    # What the role map gave at the last sign-in: the groups (JSON), server admin, and the
    # role on every project (JSON {"role", "source"}, given to projects made later too).
    Column("groups", Text),
    Column("admin_by_groups", Boolean, nullable=False, server_default=false()),
    Column("groups_all", Text),
    UniqueConstraint("oidc_issuer", "oidc_subject"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("name", NAME, nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double),
    Column("last_used_at", Double),
    Column("revoked_at", Double),
    # A scoped token may do at most `role` on `project` (both None: all its user may).
    Column("project", NAME),
    Column("role", String(16)),
    Index("ix_api_tokens_user", "user_id"),
)
# Browser sessions of users signed in through the identity provider: the cookie holds the
# secret, the store only its sha256.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Index("ix_sessions_user", "user_id"),
)
# Sign-ins under way at the identity provider, by the sha256 of their `state`; each is
# taken once (a replayed callback finds nothing).
login_requests = Table(
    "login_requests",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Index("ix_login_requests_expires", "expires_at"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
    # None: given by hand; else the groups of the identity provider that gave it.
    Column("source", String(512)),
    Index("ix_memberships_user", "user_id"),
)

# Promotion with approval (see governance/approvals.py): a model's policy, the requests to move its
# protected aliases, each reviewer's vote, and the history of every alias move.
model_policies = Table(
    "model_policies",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), primary_key=True),
    Column("protected", Text, nullable=False),  # JSON list of alias names
    Column("approver_role", String(16), nullable=False),
    Column("approvals_needed", Integer, nullable=False),
    Column("allow_self_approval", Boolean, nullable=False),
    Column("gates", Text, nullable=False),  # JSON list of gate objects
    Column("updated_by", NAME, nullable=False),
    Column("updated_at", Double, nullable=False),
)

promotion_requests = Table(
    "promotion_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    # The version the alias pointed at when the request opened (None: unset); the move is a
    # compare-and-set against it.
    Column("from_version", Integer),
    # open, approved, rejected, cancelled or stale (the alias moved after it opened)
    Column("state", String(16), nullable=False),
    Column("requested_by", NAME, nullable=False),
    Column("comment", Text),
    Column("created_at", Double, nullable=False),
    Column("decided_by", NAME),
    Column("decided_at", Double),
    Column("decision_comment", Text),
    Column("gates", Text),  # JSON: the gate results recorded at the decision
    Index("ix_promotion_requests_model", "model_id", "state"),
)

promotion_votes = Table(
    "promotion_votes",
    metadata,
    Column("request_id", Integer, ForeignKey("promotion_requests.id"), primary_key=True),
    Column("voter", NAME, primary_key=True),
    Column("decision", String(16), nullable=False),  # approve or reject
    Column("comment", Text),
    Column("at", Double, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),  # None: the alias was deleted
    Column("actor", NAME, nullable=False),
    Column("at", Double, nullable=False),
    Column("request_id", Integer),
    Index("ix_alias_history_model", "model_id", "alias"),
)

# Idempotency keys (see idempotency.py): the answer to each keyed write, by the caller's
# principal and key, so a retried write returns it instead of doing the write twice. The key is
# inserted in the transaction that makes the write: a concurrent retry waits on the primary key.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(64), primary_key=True),  # "user:ID", or "-" with nobody signed in
    Column("key", String(320), primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),  # sha256 of the canonical request
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),  # JSON
    Column("created_at", Double, nullable=False),
    Index("ix_idempotency_keys_created", "created_at"),
)

# MLflow's files (see tracking/files.py): a run's file tree, written one path at a time and
# overwritable, and MLflow 3's logged models, whose files collect while they are pending and
# become a model artifact of their run when they turn ready.
run_files = Table(
    "run_files",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    Index("ix_run_files_sha256", "sha256"),  # who may read a blob (blob_access.py)
)

# Media a run logged (images, figures, tables, text) by key and step. The bytes are a run
# file at `path` (media/KEY/STEP.EXT), so they share run files' blobs, access, deletion and
# collection; this row says what they are.
run_media = Table(
    "run_media",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("key", NAME, primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("kind", String(16), nullable=False),  # image, figure, table or text
    Column("path", String(1024), nullable=False),
    Column("meta", Text, nullable=False),  # JSON object: caption, width, height, columns...
    Column("created_at", Double, nullable=False),
)

logged_models = Table(
    "logged_models",
    metadata,
    Column("id", ID, primary_key=True),  # "m-" and 32 hex digits
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("run_id", ID, ForeignKey("runs.id")),
    Column("name", NAME, nullable=False),
    Column("status", String(16), nullable=False),  # pending, ready or failed
    Column("model_type", NAME),
    Column("params", Text, nullable=False),  # JSON object of strings
    Column("tags", Text, nullable=False),  # JSON object of strings
    Column("artifact_id", Integer, ForeignKey("artifacts.id")),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("deleted_at", Double),
    Index("ix_logged_models_project_created", "project_id", "created_at"),
    Index("ix_logged_models_run", "run_id"),
    Index("ix_logged_models_artifact", "artifact_id"),
)

logged_model_files = Table(
    "logged_model_files",
    metadata,
    Column("model_id", ID, ForeignKey("logged_models.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    Index("ix_logged_model_files_sha256", "sha256"),  # who may read a blob (blob_access.py)
)

# The models a run produced, as MLflow's `runs/outputs` records them (step: the training step).
run_model_outputs = Table(
    "run_model_outputs",
    metadata,
    Column("run_id", ID, ForeignKey("runs.id"), primary_key=True),
    Column("model_id", ID, ForeignKey("logged_models.id"), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
)
