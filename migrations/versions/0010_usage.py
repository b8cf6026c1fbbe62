"""Usage per tenant: API calls, job compute time, stored events and bytes, per day.

- ``tenant_usage``: one row per tenant and UTC day. ``api_calls`` and ``job_ms`` are added
  from counters kept in Redis (one increment per request or job, never a database write on
  the request path); the storage columns are the latest snapshot taken that day.
- ``tenant_usage_flushes``: the Redis counter batches already added, so a batch is never
  added twice (a flush that stopped after its commit is finished by the next one).

Revision ID: 0010_usage
Revises: 0009_checkpoints
Create Date: 2026-11-28
"""

from alembic import op

revision = "0010_usage"
down_revision = "0009_checkpoints"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE tenant_usage (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  day date NOT NULL,
  api_calls bigint NOT NULL DEFAULT 0 CHECK (api_calls >= 0),
  job_ms bigint NOT NULL DEFAULT 0 CHECK (job_ms >= 0),
  events_stored bigint CHECK (events_stored >= 0),
  bytes_events bigint CHECK (bytes_events >= 0),
  bytes_insights bigint CHECK (bytes_insights >= 0),
  bytes_embeddings bigint CHECK (bytes_embeddings >= 0),
  bytes_search bigint CHECK (bytes_search >= 0),
  snapshot_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, day)
);
ALTER TABLE tenant_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_usage
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
GRANT SELECT, INSERT, UPDATE ON tenant_usage TO trailseal_app;

CREATE TABLE tenant_usage_flushes (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  batch text NOT NULL,
  flushed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, batch)
);
ALTER TABLE tenant_usage_flushes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_usage_flushes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_usage_flushes
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
GRANT SELECT, INSERT, DELETE ON tenant_usage_flushes TO trailseal_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS tenant_usage_flushes; DROP TABLE IF EXISTS tenant_usage")
