"""Summaries: each tenant's daily, weekly and monthly summaries, stored once computed.

- ``audit_summaries``: one row per tenant, period kind and window start (UTC), with the
  window's end, the time zone it was cut in, the chain head (``head_seq``) when it was
  computed and the summary itself (JSON: figures, cited event ids, the narrative). Only
  complete periods are stored. The rows are derived data: they name actors and event ids,
  so they live under the same row-level security as the events, and the app may delete
  them (erasure removes a tenant's stored summaries, which are recomputed on the next read).

Revision ID: 0008_summaries
Revises: 0007_scheduled_reports
Create Date: 2026-11-28
"""

from alembic import op

revision = "0008_summaries"
down_revision = "0007_scheduled_reports"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE audit_summaries (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  period text NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly')),
  period_start timestamptz NOT NULL,
  period_end timestamptz NOT NULL,
  timezone text NOT NULL,
  head_seq bigint NOT NULL,
  content jsonb NOT NULL,
  computed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, period, period_start),
  CHECK (period_end > period_start)
);

ALTER TABLE audit_summaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_summaries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_summaries
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON audit_summaries TO trailseal_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_summaries")
