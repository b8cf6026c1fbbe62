"""GDPR erasure that keeps the chain: per-subject keys and the erasures done.

- ``subject_keys``: per tenant and subject (an actor id, or the id of an entity of a person
  type), a random key wrapped by the master key, from which the event keys of the subject's
  events derive. Erasure overwrites ``wrapped_key`` with NULL and keeps the row as a
  tombstone (``erased_at``), so later events about the subject are unreadable from the start.
- ``subject_erasures``: one row per erasure request (reason, who, what it did); an erasure
  asked for again adds a row saying nothing more was erased.
- The app role may now remove the derived data erasure removes: full-text rows and
  embeddings (deleted; the backlog rebuilds them from the ``[erased]`` text), the features of
  predictions and the details of alerts about the subject's events.

Revision ID: 0012_erasure
Revises: 0011_retention
Create Date: 2026-11-28
"""

from alembic import op

revision = "0012_erasure"
down_revision = "0011_retention"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE subject_keys (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  subject_id text NOT NULL,
  wrapped_key bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  erased_at timestamptz,
  PRIMARY KEY (tenant_id, subject_id),
  CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);
ALTER TABLE subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_keys
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
GRANT SELECT, INSERT ON subject_keys TO trailseal_app;
GRANT UPDATE (wrapped_key, erased_at) ON subject_keys TO trailseal_app;

CREATE TABLE subject_erasures (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  subject_id text NOT NULL,
  reason text NOT NULL,
  requested_by text NOT NULL,
  result jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subject_erasures_subject_idx ON subject_erasures (tenant_id, subject_id, created_at);
ALTER TABLE subject_erasures ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_erasures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_erasures
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
CREATE TRIGGER subject_erasures_append_only BEFORE UPDATE OR DELETE ON subject_erasures
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();
GRANT SELECT, INSERT ON subject_erasures TO trailseal_app;


GRANT DELETE ON audit_search_text, audit_embeddings TO trailseal_app;
GRANT UPDATE (features) ON ai_predictions TO trailseal_app;
GRANT UPDATE (details) ON audit_anomalies TO trailseal_app;
"""

DOWNGRADE = r"""
REVOKE UPDATE (details) ON audit_anomalies FROM trailseal_app;
REVOKE UPDATE (features) ON ai_predictions FROM trailseal_app;
REVOKE DELETE ON audit_search_text, audit_embeddings FROM trailseal_app;
DROP TABLE IF EXISTS subject_erasures;
DROP TABLE IF EXISTS subject_keys;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
