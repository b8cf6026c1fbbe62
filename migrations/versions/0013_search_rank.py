"""Full-text search that scales with row-level security.

Under row-level security PostgreSQL may apply a query's own conditions only after the
policy's, unless their functions are leakproof; ``tsvector @@ tsquery`` is not, so a search
of ``audit_search_text`` as the app role cannot use the GIN index and reads every row of the
tenant (about half a second at 1,000,000 events). The full-text half of search therefore
reads through one function:

- ``trailseal_text_matches(q, max_rows)``: the current tenant's events matching ``q``, best
  ``ts_rank`` first (the newest first among equals), at most ``max_rows``. It runs as ``trailseal_search_reader``, a role
  without login whose only policy on ``audit_search_text`` lets it read every row, so the
  index is used; the function itself confines the rows to ``trailseal_current_tenant()``
  (the setting the app's row-level security reads too) and returns nothing when none is
  set. The app role may execute it and is not a member of the role.

Revision ID: 0013_search_rank
Revises: 0012_erasure
Create Date: 2026-11-28
"""

from alembic import op

revision = "0013_search_rank"
down_revision = "0012_erasure"
branch_labels = None
depends_on = None

UPGRADE = r"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trailseal_search_reader') THEN
    CREATE ROLE trailseal_search_reader NOLOGIN;
  END IF;
END $$;
GRANT trailseal_search_reader TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO trailseal_search_reader;
GRANT SELECT ON audit_search_text TO trailseal_search_reader;
CREATE POLICY search_reader ON audit_search_text FOR SELECT TO trailseal_search_reader
  USING (true);

CREATE FUNCTION trailseal_text_matches(q tsquery, max_rows integer)
  RETURNS TABLE (event_id uuid, rank real)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$
DECLARE
  tenant uuid := trailseal_current_tenant();
BEGIN
  IF tenant IS NULL OR max_rows IS NULL OR max_rows < 1 THEN
    RETURN;
  END IF;
  -- The tenant as a literal: the planner then knows how many rows it holds.
  RETURN QUERY EXECUTE format(
    'SELECT s.event_id, ts_rank(s.tsv, $1) FROM audit_search_text s '
    'WHERE s.tenant_id = %L::uuid AND s.tsv @@ $1 ORDER BY 2 DESC, 1 DESC LIMIT $2', tenant)
    USING q, max_rows;
END $f$;
ALTER FUNCTION trailseal_text_matches(tsquery, integer) OWNER TO trailseal_search_reader;
REVOKE ALL ON FUNCTION trailseal_text_matches(tsquery, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trailseal_text_matches(tsquery, integer) TO trailseal_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS trailseal_text_matches(tsquery, integer); "
               "DROP POLICY IF EXISTS search_reader ON audit_search_text; "
               "REVOKE SELECT ON audit_search_text FROM trailseal_search_reader")
