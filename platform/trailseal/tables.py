"""SQLAlchemy Core definitions of the tables the cold paths query with ``select()``,
``insert()`` and ``update()``.

The schema itself is owned by the migrations (``migrations/versions/0001_core_ledger.py``
onwards); these definitions mirror the columns the services use and are never used to
create or alter tables. Row-level security, triggers and grants live only in the
migrations.
"""

from __future__ import annotations

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

metadata = MetaData()
#: pgvector's column type under the name this module gave its own earlier type.
Vector = VECTOR


def _uuid(name: str, **kw) -> Column:
    return Column(name, UUID(as_uuid=True), **kw)


def _ts(name: str, **kw) -> Column:
    return Column(name, DateTime(timezone=True), **kw)


tenants = Table(
    "tenants", metadata,
    _uuid("id", primary_key=True),
    Column("slug", Text, nullable=False),
    Column("name", Text, nullable=False),
    _ts("created_at", nullable=False),
)

users = Table(
    "users", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", nullable=False),
    Column("email", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("is_active", Boolean, nullable=False),
    _ts("created_at", nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_hash", LargeBinary, nullable=False),
    Column("permissions", ARRAY(Text), nullable=False),
    _ts("created_at", nullable=False),
    _ts("revoked_at"),
)

chain_heads = Table(
    "chain_heads", metadata,
    _uuid("tenant_id", primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", Text, nullable=False),
    _ts("updated_at", nullable=False),
)

audit_logs = Table(
    "audit_logs", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    Column("seq", BigInteger, nullable=False),
    _ts("occurred_at", nullable=False),
    _ts("received_at", nullable=False),
    Column("event_type", Text, nullable=False),
    Column("actor_id", Text, nullable=False),
    Column("actor_type", Text, nullable=False),
    Column("actor_role", Text),
    Column("actor_department", Text),
    Column("entity_type", Text, nullable=False),
    Column("entity_id", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("source", Text),
    Column("tags", ARRAY(Text), nullable=False),
    Column("key_id", Text, nullable=False),
    Column("idempotency_key", Text),
    Column("previous_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("record", LargeBinary, nullable=False),
)

event_insights = Table(
    "event_insights", metadata,
    _uuid("event_id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    Column("anomaly_score", Float),
    Column("is_anomaly", Boolean),
    Column("category", Text),
    Column("risk_level", Text),
    Column("tags", ARRAY(Text), nullable=False),
    Column("ai_insights", JSONB, nullable=False),
    Column("model_versions", JSONB, nullable=False),
    Column("review_required", Boolean, nullable=False),
    _ts("enriched_at", nullable=False),
)

audit_embeddings = Table(
    "audit_embeddings", metadata,
    _uuid("event_id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    Column("model", Text, primary_key=True),
    Column("dims", Integer, nullable=False),
    # pgvector's type: written from a list (or numpy array) of floats, read back as numpy
    Column("embedding", VECTOR(), nullable=False),
    _ts("created_at", nullable=False),
)

audit_search_text = Table(
    "audit_search_text", metadata,
    _uuid("tenant_id", primary_key=True),
    _uuid("event_id", primary_key=True),
    Column("tsv", TSVECTOR, nullable=False),
    _ts("indexed_at", nullable=False),
)

audit_anomalies = Table(
    "audit_anomalies", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    _uuid("event_id"),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("dedupe_key", Text),
    Column("status_changed_by", Text),
    _ts("status_changed_at"),
    _ts("created_at", nullable=False),
)

audit_access_log = Table(
    "audit_access_log", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _uuid("tenant_id", primary_key=True),
    Column("principal_type", Text, nullable=False),
    Column("principal_id", Text, nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("query", JSONB, nullable=False),
    Column("remote_addr", Text),
    _ts("accessed_at", nullable=False),
)

user_sessions = Table(
    "user_sessions", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    _uuid("user_id", nullable=False),
    _ts("created_at", nullable=False),
    Column("remote_addr", Text),
    _ts("revoked_at"),
    Column("revoked_reason", Text),
)

audit_ml_models = Table(
    "audit_ml_models", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    Column("model_type", Text, nullable=False),
    Column("version", Text, nullable=False),
    _ts("trained_from"),
    _ts("trained_to"),
    Column("training_events", Integer, nullable=False),
    Column("features", JSONB, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("metrics", JSONB, nullable=False),
    Column("artifact", LargeBinary, nullable=False),
    Column("artifact_format", Text, nullable=False),
    Column("artifact_sha256", Text, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("created_by", Text, nullable=False),
    _ts("created_at", nullable=False),
)

ai_predictions = Table(
    "ai_predictions", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _uuid("tenant_id", primary_key=True),
    _uuid("event_id", nullable=False),
    Column("kind", Text, nullable=False),
    Column("producer", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("score", Float),
    Column("label", Text),
    Column("confidence", Float),
    Column("review_required", Boolean, nullable=False),
    Column("features", JSONB, nullable=False),
    _ts("created_at", nullable=False),
)

anomaly_feedback = Table(
    "anomaly_feedback", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _uuid("tenant_id", primary_key=True),
    _uuid("alert_id", nullable=False),
    _uuid("event_id"),
    Column("is_false_positive", Boolean, nullable=False),
    Column("notes", Text, nullable=False),
    Column("given_by", Text, nullable=False),
    _ts("given_at", nullable=False),
)

insight_corrections = Table(
    "insight_corrections", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _uuid("tenant_id", primary_key=True),
    _uuid("event_id", nullable=False),
    Column("category", Text),
    Column("risk_level", Text),
    Column("notes", Text, nullable=False),
    Column("corrected_by", Text, nullable=False),
    _ts("corrected_at", nullable=False),
)

bias_metrics = Table(
    "bias_metrics", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _uuid("tenant_id", primary_key=True),
    _uuid("run_id", nullable=False),
    Column("model_version", Text, nullable=False),
    _ts("window_start", nullable=False),
    _ts("window_end", nullable=False),
    Column("dimension", Text, nullable=False),
    Column("grp", Text, nullable=False),
    Column("events", Integer, nullable=False),
    Column("flagged", Integer, nullable=False),
    Column("rate", Float, nullable=False),
    Column("overall_rate", Float, nullable=False),
    Column("ci_low", Float, nullable=False),
    Column("ci_high", Float, nullable=False),
    Column("status", Text, nullable=False),
    _ts("computed_at", nullable=False),
)

detector_profiles = Table(
    "detector_profiles", metadata,
    _uuid("tenant_id", primary_key=True),
    Column("detector", Text, primary_key=True),
    Column("through_seq", BigInteger, nullable=False),
    Column("state", LargeBinary, nullable=False),
    _ts("updated_at", nullable=False),
)

tenant_settings = Table(
    "tenant_settings", metadata,
    _uuid("tenant_id", primary_key=True),
    Column("key", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_by", Text, nullable=False),
    _ts("updated_at", nullable=False),
)

audit_integrations = Table(
    "audit_integrations", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("min_severity", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("secrets", LargeBinary),
    Column("key_id", Text),
    Column("created_by", Text, nullable=False),
    _ts("created_at", nullable=False),
)

audit_deliveries = Table(
    "audit_deliveries", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    _uuid("integration_id", nullable=False),
    _uuid("alert_id", nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("last_status_code", Integer),
    _ts("next_attempt_at"),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    _ts("delivered_at"),
    Column("redelivered_by", Text),
)

audit_scheduled_reports = Table(
    "audit_scheduled_reports", metadata,
    _uuid("id", primary_key=True),
    _uuid("tenant_id", primary_key=True),
    Column("name", Text, nullable=False),
    Column("cron", Text, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("filters", JSONB, nullable=False),
    Column("format", Text, nullable=False),
    Column("recipients", ARRAY(Text), nullable=False),
    Column("created_by", Text, nullable=False),
    _ts("created_at", nullable=False),
    _ts("next_run", nullable=False),
    _ts("last_run"),
    Column("last_status", Text),
    Column("last_error", Text),
    _ts("covered_until", nullable=False),
    Column("runs", Integer, nullable=False),
)

audit_summaries = Table(
    "audit_summaries", metadata,
    _uuid("tenant_id", primary_key=True),
    Column("period", Text, primary_key=True),
    _ts("period_start", primary_key=True),
    _ts("period_end", nullable=False),
    Column("timezone", Text, nullable=False),
    Column("head_seq", BigInteger, nullable=False),
    Column("content", JSONB, nullable=False),
    _ts("computed_at", nullable=False),
)
