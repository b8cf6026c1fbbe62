"""Semantic search: the full-text index of each event's decrypted rendering.

- ``audit_search_text``: one row per event, the ``tsvector`` (English configuration) of
  ``Event.text()``, the rendering embeddings are made from too. It is derived from
  decrypted fields, so it lives under the same row-level security as the events; it keeps
  the lexemes and their positions, never the text itself.
- a GIN index on it for ``@@`` matches.

Vector search reads ``audit_embeddings`` (0001) within one tenant: the primary key
(tenant_id, event_id, model) is the index that keeps the exact scan to the tenant's rows.

Revision ID: 0005_semantic_search
Revises: 0004_classification
Create Date: 2026-11-27
"""

from alembic import op

revision = "0005_semantic_search"
down_revision = "0004_classification"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE audit_search_text (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  event_id uuid NOT NULL,
  tsv tsvector NOT NULL,
  indexed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id),
  FOREIGN KEY (tenant_id, event_id) REFERENCES audit_logs (tenant_id, id)
);
CREATE INDEX audit_search_text_tsv_idx ON audit_search_text USING gin (tsv);

ALTER TABLE audit_search_text ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_search_text FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_search_text
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());

GRANT SELECT, INSERT, UPDATE ON audit_search_text TO trailseal_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_search_text")
