"""Scheduled reports: a tenant's report schedules (cron, time zone, filters, format,
recipients) and the state of their runs.

- ``audit_scheduled_reports``: one row per schedule. ``next_run`` is the next slot (UTC);
  the scheduler claims a due schedule by moving ``next_run`` on with a compare-and-set
  (``... WHERE next_run = <the value it read>``), so two schedulers never send one slot
  twice. ``covered_until``: the events that occurred before it were reported (the end of
  the last report sent; for a new schedule the slot before its first one). The next report
  starts there, so a failed send, which leaves it, is covered by the next report.
- ``trailseal_due_report_schedules(now, limit)``: the due schedules of every tenant (ids
  only), a SECURITY DEFINER door through row-level security like ``trailseal_tenant_ids``;
  each schedule is then claimed and read inside its own tenant's transaction.

Revision ID: 0007_scheduled_reports
Revises: 0006_integrations
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007_scheduled_reports"
down_revision = "0006_integrations"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE audit_scheduled_reports (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  cron text NOT NULL,
  timezone text NOT NULL,
  filters jsonb NOT NULL DEFAULT '{}'::jsonb,
  format text NOT NULL,
  recipients text[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 20),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  next_run timestamptz NOT NULL,
  last_run timestamptz,
  last_status text CHECK (last_status IN ('running', 'sent', 'failed')),
  last_error text,
  covered_until timestamptz NOT NULL,
  runs integer NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_scheduled_reports_due_idx ON audit_scheduled_reports (next_run);

ALTER TABLE audit_scheduled_reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_scheduled_reports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_scheduled_reports
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON audit_scheduled_reports TO trailseal_app;

CREATE FUNCTION trailseal_due_report_schedules(p_now timestamptz, p_limit integer)
  RETURNS TABLE (tenant_id uuid, id uuid, next_run timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT tenant_id, id, next_run FROM audit_scheduled_reports
         WHERE next_run <= p_now ORDER BY next_run LIMIT p_limit $f$;
REVOKE ALL ON FUNCTION trailseal_due_report_schedules(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trailseal_due_report_schedules(timestamptz, integer) TO trailseal_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS trailseal_due_report_schedules(timestamptz, integer)")
    op.execute("DROP TABLE IF EXISTS audit_scheduled_reports")
