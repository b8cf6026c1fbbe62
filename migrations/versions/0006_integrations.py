"""Notifications: the tenant's channels and every delivery of an alert to one of them.

- ``audit_integrations``: a notification channel of a tenant (Slack, Teams, Zapier, webhook,
  email or a plugin's kind), its minimum severity, the non-secret part of its configuration
  (``config``) and the secret part (webhook URLs with tokens, signing secrets) encrypted
  with the tenant's data key (``secrets``, AES-GCM bound to the integration's id).
- ``audit_deliveries``: one row per (alert, integration), its id derived from both, so an
  alert never gets two deliveries to one channel; status ``pending``, ``delivered``,
  ``failed`` (a retry is due at ``next_attempt_at``) or ``dead`` (retries exhausted), the
  attempts made and the last error. Deleting an integration deletes its deliveries.

Revision ID: 0006_integrations
Revises: 0005_semantic_search
Create Date: 2026-11-28
"""

from alembic import op

revision = "0006_integrations"
down_revision = "0005_semantic_search"
branch_labels = None
depends_on = None

TABLES = ("audit_integrations", "audit_deliveries")

UPGRADE = r"""
CREATE TABLE audit_integrations (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  kind text NOT NULL,
  name text NOT NULL,
  min_severity text NOT NULL,
  config jsonb NOT NULL DEFAULT '{}',
  secrets bytea,
  key_id text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name)
);

CREATE TABLE audit_deliveries (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  integration_id uuid NOT NULL,
  alert_id uuid NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  last_status_code integer,
  next_attempt_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  redelivered_by text,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, integration_id, alert_id),
  FOREIGN KEY (tenant_id, integration_id) REFERENCES audit_integrations (tenant_id, id)
    ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, alert_id) REFERENCES audit_anomalies (tenant_id, id)
);
-- The retry sweep: what is due, oldest first.
CREATE INDEX audit_deliveries_due_idx ON audit_deliveries (next_attempt_at)
  WHERE status IN ('pending', 'failed');
CREATE INDEX audit_deliveries_list_idx
  ON audit_deliveries (tenant_id, integration_id, created_at DESC);

GRANT SELECT, INSERT, DELETE ON audit_integrations TO trailseal_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON audit_deliveries TO trailseal_app;
"""

POLICY = """
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {t}
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in TABLES:
        op.execute(POLICY.format(t=table))


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_deliveries")
    op.execute("DROP TABLE IF EXISTS audit_integrations")
