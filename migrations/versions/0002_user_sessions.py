"""Server-side sign-in sessions: a session cookie names a row here, and signing out,
deactivating the user or changing their password revokes the row, so a copied cookie stops
working at once.

Revision ID: 0002_user_sessions
Revises: 0001_core_ledger
Create Date: 2026-11-27
"""

from alembic import op

revision = "0002_user_sessions"
down_revision = "0001_core_ledger"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE user_sessions (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  user_id uuid NOT NULL REFERENCES users(id),
  created_at timestamptz NOT NULL DEFAULT now(),
  remote_addr text,
  revoked_at timestamptz,
  revoked_reason text,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX user_sessions_user_idx ON user_sessions (tenant_id, user_id) WHERE revoked_at IS NULL;

GRANT SELECT, INSERT ON user_sessions TO trailseal_app;
GRANT UPDATE (revoked_at, revoked_reason) ON user_sessions TO trailseal_app;

ALTER TABLE user_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_sessions
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS user_sessions")
