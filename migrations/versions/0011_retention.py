"""Retention and legal hold: removing an expired, archived, unheld prefix of a tenant's
chain through a dedicated maintenance role, and nothing else.

- ``legal_holds``: per tenant, holds on the whole tenant or on one entity
  (``entity_type`` + ``entity_id``), with who placed and released them, when and why. The
  app role may add holds and release them (set the release columns), never remove one.
- ``retention_purges``: one row per removal of a chain prefix: the last removed seq, the
  chain hash of that event (the link the first retained event must have), the archive it
  was written to and that file's SHA-256; append-only. The app role may only read it.
- ``trailseal_retention_boundary(tenant)``: the largest seq N, a multiple of 64 (the
  Merkle tree's stored subtrees cover exactly 1..N), such that every event from the last
  purge up to N occurred more than the tenant's retention period ago, none is under a
  legal hold (and the tenant is not), and a signed checkpoint covers N.
- ``trailseal_retention_purge(...)``: SECURITY DEFINER, executable only by the NOLOGIN role
  ``trailseal_maintenance``: re-checks the boundary under the tenant's checkpoint lock,
  removes the events and their derived rows (insights, embeddings, predictions,
  corrections, search text, alerts and their feedback) and records the purge.
- The append-only trigger of ``audit_logs`` lets a DELETE through only inside that
  function: for the table owner's role, for the tenant and seqs the function announced in
  a transaction-local setting. The app role still has no DELETE privilege at all.

Revision ID: 0011_retention
Revises: 0010_usage
Create Date: 2026-11-28
"""

from alembic import op

revision = "0011_retention"
down_revision = "0010_usage"
branch_labels = None
depends_on = None

UPGRADE = r"""
DO $$ BEGIN
  CREATE ROLE trailseal_maintenance NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE legal_holds (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  scope text NOT NULL CHECK (scope IN ('tenant', 'entity')),
  entity_type text,
  entity_id text,
  reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  released_by text,
  released_at timestamptz,
  release_reason text,
  PRIMARY KEY (tenant_id, id),
  CHECK ((scope = 'tenant') = (entity_type IS NULL AND entity_id IS NULL)),
  CHECK ((released_at IS NULL) = (released_by IS NULL))
);
CREATE INDEX legal_holds_active_idx ON legal_holds (tenant_id, entity_type, entity_id)
  WHERE released_at IS NULL;
-- A released hold stays released.
CREATE FUNCTION trailseal_hold_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF OLD.released_at IS NOT NULL OR NEW.id <> OLD.id OR NEW.scope <> OLD.scope
     OR NEW.entity_type IS DISTINCT FROM OLD.entity_type
     OR NEW.entity_id IS DISTINCT FROM OLD.entity_id OR NEW.reason <> OLD.reason
     OR NEW.created_by <> OLD.created_by OR NEW.created_at <> OLD.created_at THEN
    RAISE EXCEPTION 'legal_holds: only an active hold can be released'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER legal_holds_release_only BEFORE UPDATE ON legal_holds
  FOR EACH ROW EXECUTE FUNCTION trailseal_hold_guard();
CREATE TRIGGER legal_holds_no_delete BEFORE DELETE ON legal_holds
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();

CREATE TABLE retention_purges (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  purged_through bigint NOT NULL CHECK (purged_through > 0 AND purged_through % 64 = 0),
  from_seq bigint NOT NULL CHECK (from_seq > 0),
  last_hash text NOT NULL,
  events_removed bigint NOT NULL,
  archive_name text NOT NULL,
  archive_sha256 text NOT NULL CHECK (archive_sha256 ~ '^[0-9a-f]{64}$'),
  retention_days integer NOT NULL,
  purged_by text NOT NULL,
  purged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, purged_through)
);
CREATE TRIGGER retention_purges_append_only BEFORE UPDATE OR DELETE ON retention_purges
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();
CREATE TRIGGER retention_purges_no_truncate BEFORE TRUNCATE ON retention_purges
  FOR EACH STATEMENT EXECUTE FUNCTION trailseal_reject_change();

CREATE FUNCTION trailseal_retention_days(p_tenant uuid) RETURNS integer
  LANGUAGE sql STABLE SET search_path = public, pg_temp
  AS $f$ SELECT coalesce((SELECT (value #>> '{}')::integer FROM tenant_settings
                           WHERE tenant_id = p_tenant AND key = 'retention.days'), 2557) $f$;

CREATE FUNCTION trailseal_retention_boundary(p_tenant uuid) RETURNS bigint
  LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $f$
DECLARE
  v_from bigint;
  v_stop bigint;
  v_seq bigint;
BEGIN
  SELECT coalesce(max(purged_through), 0) INTO v_from
    FROM retention_purges WHERE tenant_id = p_tenant;
  IF EXISTS (SELECT 1 FROM legal_holds WHERE tenant_id = p_tenant AND scope = 'tenant'
               AND released_at IS NULL) THEN
    RETURN v_from;
  END IF;
  -- The first seq that must stay: past the chain head or the latest checkpoint ...
  SELECT least(coalesce((SELECT last_seq FROM chain_heads WHERE tenant_id = p_tenant), 0),
               coalesce((SELECT max(tree_size) FROM chain_checkpoints
                          WHERE tenant_id = p_tenant), 0)) + 1 INTO v_stop;
  -- ... the first event that has not expired ...
  SELECT min(seq) INTO v_seq FROM audit_logs
   WHERE tenant_id = p_tenant AND seq > v_from AND seq < v_stop
     AND occurred_at >= now() - make_interval(days => trailseal_retention_days(p_tenant));
  v_stop := least(v_stop, coalesce(v_seq, v_stop));
  -- ... the first event of an entity under legal hold.
  SELECT min(a.seq) INTO v_seq FROM legal_holds h
    JOIN audit_logs a ON a.tenant_id = h.tenant_id AND a.entity_type = h.entity_type
                     AND a.entity_id = h.entity_id
   WHERE h.tenant_id = p_tenant AND h.scope = 'entity' AND h.released_at IS NULL
     AND a.seq > v_from AND a.seq < v_stop;
  v_stop := least(v_stop, coalesce(v_seq, v_stop));
  RETURN greatest(v_from, ((v_stop - 1) / 64) * 64);
END $f$;

-- Removing events checks the alerts that reference them (the foreign key): by index, not
-- a scan of the tenant's alerts per removed event.
CREATE INDEX audit_anomalies_event_idx ON audit_anomalies (tenant_id, event_id);

CREATE FUNCTION trailseal_audit_logs_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  v_allowed text := coalesce(current_setting('trailseal.retention_purge', true), '');
BEGIN
  IF TG_OP = 'DELETE' AND v_allowed <> ''
     AND split_part(v_allowed, ':', 1) = OLD.tenant_id::text
     AND OLD.seq <= split_part(v_allowed, ':', 2)::bigint
     AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                     'MEMBER') THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $f$;
DROP TRIGGER audit_logs_append_only ON audit_logs;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION trailseal_audit_logs_guard();

CREATE FUNCTION trailseal_retention_purge(p_tenant uuid, p_through bigint, p_archive_name text,
                                          p_archive_sha256 text, p_by text)
  RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $f$
DECLARE
  v_from bigint;
  v_max bigint;
  v_hash text;
  v_removed bigint;
BEGIN
  PERFORM set_config('trailseal.tenant_id', p_tenant::text, true);
  -- Checkpoints of the tenant read the prefix; none runs while it goes.
  PERFORM pg_advisory_xact_lock(hashtextextended('trailseal-checkpoint:' || p_tenant::text, 0));
  SELECT coalesce(max(purged_through), 0) INTO v_from
    FROM retention_purges WHERE tenant_id = p_tenant;
  v_max := trailseal_retention_boundary(p_tenant);
  IF p_through IS NULL OR p_through <= v_from OR p_through > v_max OR p_through % 64 <> 0 THEN
    RAISE EXCEPTION 'retention: seqs % to % may not be removed (removable up to %)',
      v_from + 1, p_through, v_max USING ERRCODE = 'check_violation';
  END IF;
  IF p_archive_sha256 IS NULL OR p_archive_sha256 !~ '^[0-9a-f]{64}$'
     OR coalesce(p_archive_name, '') = '' OR coalesce(p_by, '') = '' THEN
    RAISE EXCEPTION 'retention: the archive and who purges must be named'
      USING ERRCODE = 'check_violation';
  END IF;
  SELECT hash INTO v_hash FROM audit_logs WHERE tenant_id = p_tenant AND seq = p_through;
  CREATE TEMP TABLE IF NOT EXISTS pg_temp.trailseal_purged_ids (id uuid PRIMARY KEY) ON COMMIT DROP;
  INSERT INTO pg_temp.trailseal_purged_ids
    SELECT id FROM audit_logs WHERE tenant_id = p_tenant AND seq > v_from AND seq <= p_through;
  DELETE FROM event_insights WHERE tenant_id = p_tenant
    AND event_id IN (SELECT id FROM pg_temp.trailseal_purged_ids);
  DELETE FROM audit_embeddings WHERE tenant_id = p_tenant
    AND event_id IN (SELECT id FROM pg_temp.trailseal_purged_ids);
  DELETE FROM ai_predictions WHERE tenant_id = p_tenant
    AND event_id IN (SELECT id FROM pg_temp.trailseal_purged_ids);
  DELETE FROM insight_corrections WHERE tenant_id = p_tenant
    AND event_id IN (SELECT id FROM pg_temp.trailseal_purged_ids);
  DELETE FROM audit_search_text WHERE tenant_id = p_tenant
    AND event_id IN (SELECT id FROM pg_temp.trailseal_purged_ids);
  DELETE FROM anomaly_feedback WHERE tenant_id = p_tenant
    AND alert_id IN (SELECT id FROM audit_anomalies WHERE tenant_id = p_tenant
                      AND event_id IN (SELECT id FROM pg_temp.trailseal_purged_ids));
  DELETE FROM audit_anomalies WHERE tenant_id = p_tenant
    AND event_id IN (SELECT id FROM pg_temp.trailseal_purged_ids);
  PERFORM set_config('trailseal.retention_purge', p_tenant::text || ':' || p_through, true);
  DELETE FROM audit_logs WHERE tenant_id = p_tenant AND seq > v_from AND seq <= p_through;
  GET DIAGNOSTICS v_removed = ROW_COUNT;
  PERFORM set_config('trailseal.retention_purge', '', true);
  IF v_hash IS NULL OR v_removed <> p_through - v_from THEN
    RAISE EXCEPTION 'retention: events % to % are not all stored (% found): verify the chain',
      v_from + 1, p_through, v_removed USING ERRCODE = 'data_corrupted';
  END IF;
  DROP TABLE pg_temp.trailseal_purged_ids;
  INSERT INTO retention_purges (tenant_id, purged_through, from_seq, last_hash, events_removed,
                                archive_name, archive_sha256, retention_days, purged_by)
    VALUES (p_tenant, p_through, v_from + 1, v_hash, v_removed, p_archive_name,
            p_archive_sha256, trailseal_retention_days(p_tenant), p_by);
  RETURN v_removed;
END $f$;

REVOKE ALL ON FUNCTION trailseal_retention_purge(uuid, bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trailseal_retention_purge(uuid, bigint, text, text, text)
  TO trailseal_maintenance;
GRANT USAGE ON SCHEMA public TO trailseal_maintenance;
GRANT EXECUTE ON FUNCTION trailseal_retention_boundary(uuid), trailseal_retention_days(uuid)
  TO trailseal_app;

GRANT SELECT, INSERT ON legal_holds TO trailseal_app;
GRANT UPDATE (released_by, released_at, release_reason) ON legal_holds TO trailseal_app;
GRANT SELECT ON retention_purges TO trailseal_app;
"""

POLICY = """
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {t}
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
"""

DOWNGRADE = """
DROP TRIGGER audit_logs_append_only ON audit_logs;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();
DROP FUNCTION IF EXISTS trailseal_retention_purge(uuid, bigint, text, text, text),
  trailseal_retention_boundary(uuid), trailseal_retention_days(uuid),
  trailseal_audit_logs_guard(), trailseal_hold_guard();
DROP TABLE IF EXISTS retention_purges, legal_holds;
DROP INDEX IF EXISTS audit_anomalies_event_idx;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in ("legal_holds", "retention_purges"):
        op.execute(POLICY.format(t=table))


def downgrade() -> None:
    op.execute(DOWNGRADE)
