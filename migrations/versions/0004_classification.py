"""Event classification: analysts' corrections of an event's category and risk level.

- ``insight_corrections``: every correction (category and/or risk level, notes, who and
  when). Insert-only; for each field the latest correction of an event counts. Corrections
  override any classifier for that event and are training labels; the event itself never
  changes.
- Tag rules a tenant adds live in ``tenant_settings`` (key ``tags.rules``).

Revision ID: 0004_classification
Revises: 0003_anomaly_detection
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004_classification"
down_revision = "0003_anomaly_detection"
branch_labels = None
depends_on = None

CATEGORIES = ("authentication", "access_control", "user_management", "data_access",
              "data_modification", "data_export", "configuration_change", "financial",
              "security", "integration_system")
RISK_LEVELS = ("low", "medium", "high", "critical")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


UPGRADE = rf"""
CREATE TABLE insight_corrections (
  id bigserial NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  event_id uuid NOT NULL,
  category text CHECK (category IN ({_in(CATEGORIES)})),
  risk_level text CHECK (risk_level IN ({_in(RISK_LEVELS)})),
  notes text NOT NULL DEFAULT '',
  corrected_by text NOT NULL,
  corrected_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, event_id) REFERENCES audit_logs (tenant_id, id),
  CHECK (category IS NOT NULL OR risk_level IS NOT NULL OR notes <> '')
);
CREATE INDEX insight_corrections_event_idx
  ON insight_corrections (tenant_id, event_id, corrected_at DESC, id DESC);

ALTER TABLE insight_corrections ENABLE ROW LEVEL SECURITY;
ALTER TABLE insight_corrections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON insight_corrections
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());

GRANT SELECT, INSERT ON insight_corrections TO trailseal_app;
GRANT USAGE ON SEQUENCE insight_corrections_id_seq TO trailseal_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS insight_corrections")
