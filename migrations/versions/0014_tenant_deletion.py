"""Tenant deletion: a request, a second admin's confirmation, an archive of the whole chain,
the tenant marked deleted, and after its retention period a purge that destroys its data
keys (crypto-shredding); every step recorded.

- ``tenant_deletions``: one row per request. Each step's columns are written once and never
  changed (``trailseal_deletion_guard``); the database itself refuses a confirmation by the
  requester, a mark before the archive, and computes the mark's time and the earliest purge
  (the mark plus the tenant's retention period at that moment), so the app role cannot
  bring a purge forward. At most one open request per tenant.
- ``tenant_deletion_steps``: append-only, one row per step (requested, confirmed, cancelled,
  expired, archived, marked, purged, restored, failed) with who, when and details. Kept
  after the purge, with the deletion row and the tenant's row.
- ``chain_heads.closed_at``: set at confirmation; a closed chain takes no more events (the
  guard refuses moving its head) and is reopened only by a restore.
- The look-ups through row-level security (logins, API keys, the tenants jobs visit, due
  scheduled reports) skip a tenant marked deleted, so nobody signs in, calls the API or
  ingests for it, and no job or report runs for it.
- ``trailseal_tenant_purge`` and ``trailseal_tenant_restore``: SECURITY DEFINER, executable
  only by ``trailseal_maintenance``. The purge checks the deletion is marked, due and under
  no legal hold, then deletes every row of the tenant from every table with a
  ``tenant_id`` (the ledger, derived data, its data keys and per-subject keys, access log,
  checkpoints) except the tenant's own row and its deletion records. The append-only
  triggers let those deletes through only inside that function (for the table owner's role
  and the announced tenant).

Revision ID: 0014_tenant_deletion
Revises: 0013_search_rank
Create Date: 2026-11-28
"""

from alembic import op

revision = "0014_tenant_deletion"
down_revision = "0013_search_rank"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE tenant_deletions (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
  requested_by text NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  confirmed_by text,
  confirmed_at timestamptz,
  cancelled_by text,
  cancelled_at timestamptz,
  cancel_reason text,
  archived_at timestamptz,
  archives jsonb,
  head_seq bigint,
  head_hash text,
  checkpoint_note text,
  public_key text,
  marked_at timestamptz,
  retention_days integer,
  purge_after timestamptz,
  purged_by text,
  purged_at timestamptz,
  purge_result jsonb,
  restored_by text,
  restored_at timestamptz,
  restore_reason text,
  PRIMARY KEY (tenant_id, id),
  CHECK ((confirmed_at IS NULL) = (confirmed_by IS NULL)),
  CHECK (confirmed_by IS NULL OR confirmed_by <> requested_by),
  CHECK ((cancelled_at IS NULL) = (cancelled_by IS NULL)),
  CHECK (cancelled_at IS NULL OR confirmed_at IS NULL),
  CHECK (archived_at IS NULL OR (confirmed_at IS NOT NULL AND archives IS NOT NULL)),
  CHECK (marked_at IS NULL OR archived_at IS NOT NULL),
  CHECK ((marked_at IS NULL) = (purge_after IS NULL)),
  CHECK (purged_at IS NULL OR marked_at IS NOT NULL),
  CHECK ((purged_at IS NULL) = (purged_by IS NULL)),
  CHECK ((restored_at IS NULL) = (restored_by IS NULL)),
  CHECK (restored_at IS NULL OR (confirmed_at IS NOT NULL AND purged_at IS NULL))
);
CREATE UNIQUE INDEX tenant_deletions_open_idx ON tenant_deletions (tenant_id)
  WHERE cancelled_at IS NULL AND restored_at IS NULL AND purged_at IS NULL;

-- Each column, once written, keeps its value; marking takes its time and the earliest purge
-- from the database, not from the caller.
CREATE FUNCTION trailseal_deletion_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  v_old jsonb;
  v_new jsonb;
  v_key text;
  v_value jsonb;
BEGIN
  IF OLD.marked_at IS NULL AND NEW.marked_at IS NOT NULL THEN
    NEW.marked_at := clock_timestamp();
    NEW.retention_days := trailseal_retention_days(NEW.tenant_id);
    NEW.purge_after := NEW.marked_at + make_interval(days => NEW.retention_days);
  END IF;
  v_old := to_jsonb(OLD);
  v_new := to_jsonb(NEW);
  FOR v_key, v_value IN SELECT * FROM jsonb_each(v_old) LOOP
    IF v_value <> 'null'::jsonb AND v_new -> v_key IS DISTINCT FROM v_value THEN
      RAISE EXCEPTION 'tenant_deletions: % was already recorded', v_key
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
  IF OLD.retention_days IS NULL AND NEW.retention_days IS NOT NULL AND NEW.marked_at IS NULL THEN
    RAISE EXCEPTION 'tenant_deletions: retention_days is set by the mark'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER tenant_deletions_guard BEFORE UPDATE ON tenant_deletions
  FOR EACH ROW EXECUTE FUNCTION trailseal_deletion_guard();
CREATE TRIGGER tenant_deletions_no_delete BEFORE DELETE ON tenant_deletions
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();

CREATE TABLE tenant_deletion_steps (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL,
  deletion_id uuid NOT NULL,
  step text NOT NULL CHECK (step IN ('requested', 'confirmed', 'cancelled', 'expired',
                                     'archived', 'marked', 'purged', 'restored', 'failed')),
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  details jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, deletion_id) REFERENCES tenant_deletions (tenant_id, id)
);
CREATE INDEX tenant_deletion_steps_idx ON tenant_deletion_steps (tenant_id, deletion_id, at);
CREATE TRIGGER tenant_deletion_steps_append_only BEFORE UPDATE OR DELETE
  ON tenant_deletion_steps FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();

-- A closed chain takes no more events; only a restore (the owner's function) reopens it.
ALTER TABLE chain_heads ADD COLUMN closed_at timestamptz;
CREATE FUNCTION trailseal_chain_head_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF OLD.closed_at IS NOT NULL AND (NEW.last_seq <> OLD.last_seq
                                    OR NEW.last_hash <> OLD.last_hash) THEN
    RAISE EXCEPTION 'the chain of tenant % is closed: the tenant is being deleted',
      OLD.tenant_id USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF OLD.closed_at IS NOT NULL AND NEW.closed_at IS DISTINCT FROM OLD.closed_at
     AND NOT (coalesce(current_setting('trailseal.tenant_restore', true), '')
              = OLD.tenant_id::text
              AND pg_has_role(current_user, (SELECT relowner FROM pg_class
                                             WHERE oid = TG_RELID), 'MEMBER')) THEN
    RAISE EXCEPTION 'a closed chain is reopened only by restoring the tenant'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER chain_heads_guard BEFORE UPDATE ON chain_heads
  FOR EACH ROW EXECUTE FUNCTION trailseal_chain_head_guard();

-- The append-only triggers let a tenant purge through (the owner's role, the announced
-- tenant), as the ledger's lets a retention purge through.
CREATE OR REPLACE FUNCTION trailseal_reject_change() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  v_purge text := coalesce(current_setting('trailseal.tenant_purge', true), '');
BEGIN
  IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' AND v_purge <> ''
     AND to_jsonb(OLD) ->> 'tenant_id' = v_purge
     AND TG_TABLE_NAME NOT IN ('tenant_deletions', 'tenant_deletion_steps')
     AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                     'MEMBER') THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $f$;

CREATE OR REPLACE FUNCTION trailseal_audit_logs_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  v_allowed text := coalesce(current_setting('trailseal.retention_purge', true), '');
  v_purge text := coalesce(current_setting('trailseal.tenant_purge', true), '');
  v_owner boolean;
BEGIN
  IF TG_OP = 'DELETE' AND (v_allowed <> '' OR v_purge <> '') THEN
    v_owner := pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                           'MEMBER');
    IF v_owner AND v_purge = OLD.tenant_id::text THEN
      RETURN OLD;
    END IF;
    IF v_owner AND v_allowed <> '' AND split_part(v_allowed, ':', 1) = OLD.tenant_id::text
       AND OLD.seq <= split_part(v_allowed, ':', 2)::bigint THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $f$;

-- Marked tenants: no sign-in, no API key, no job visits them.
CREATE FUNCTION trailseal_tenant_deleted(p_tenant uuid) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT EXISTS (SELECT 1 FROM tenant_deletions WHERE tenant_id = p_tenant
                          AND marked_at IS NOT NULL AND restored_at IS NULL) $f$;

CREATE OR REPLACE FUNCTION trailseal_find_api_key(p_hash bytea)
  RETURNS TABLE (id uuid, tenant_id uuid, name text, permissions text[], revoked_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT k.id, k.tenant_id, k.name, k.permissions, k.revoked_at FROM api_keys k
          WHERE k.key_hash = p_hash AND NOT trailseal_tenant_deleted(k.tenant_id) $f$;

CREATE OR REPLACE FUNCTION trailseal_find_login(p_email text)
  RETURNS TABLE (id uuid, tenant_id uuid, password_hash text, role text, is_active boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT u.id, u.tenant_id, u.password_hash, u.role, u.is_active FROM users u
          WHERE lower(u.email) = lower(p_email) AND NOT trailseal_tenant_deleted(u.tenant_id) $f$;

CREATE OR REPLACE FUNCTION trailseal_tenant_ids()
  RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id FROM tenants WHERE NOT trailseal_tenant_deleted(id) ORDER BY created_at $f$;

CREATE OR REPLACE FUNCTION trailseal_due_report_schedules(p_now timestamptz, p_limit integer)
  RETURNS TABLE (tenant_id uuid, id uuid, next_run timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT tenant_id, id, next_run FROM audit_scheduled_reports
         WHERE next_run <= p_now AND NOT trailseal_tenant_deleted(tenant_id)
         ORDER BY next_run LIMIT p_limit $f$;

-- What the deletion job has to do: confirmed, not yet purged, restored or cancelled.
CREATE FUNCTION trailseal_open_deletions()
  RETURNS TABLE (tenant_id uuid, deletion_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT tenant_id, id FROM tenant_deletions
          WHERE confirmed_at IS NOT NULL AND purged_at IS NULL AND restored_at IS NULL
          ORDER BY confirmed_at $f$;

CREATE FUNCTION trailseal_tenant_purge(p_tenant uuid, p_deletion uuid, p_by text)
  RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $f$
DECLARE
  d tenant_deletions%ROWTYPE;
  v_tables text[];
  v_left text[];
  v_table text;
  v_count bigint;
  v_removed jsonb := '{}'::jsonb;
  v_progress boolean;
  v_result jsonb;
BEGIN
  IF coalesce(p_by, '') = '' THEN
    RAISE EXCEPTION 'tenant purge: who purges must be named' USING ERRCODE = 'check_violation';
  END IF;
  PERFORM set_config('trailseal.tenant_id', p_tenant::text, true);
  PERFORM pg_advisory_xact_lock(hashtextextended('trailseal-checkpoint:' || p_tenant::text, 0));
  SELECT * INTO d FROM tenant_deletions WHERE tenant_id = p_tenant AND id = p_deletion
    FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'tenant purge: no deletion % of tenant %', p_deletion, p_tenant
      USING ERRCODE = 'check_violation';
  END IF;
  IF d.purged_at IS NOT NULL OR d.restored_at IS NOT NULL OR d.marked_at IS NULL
     OR d.purge_after > clock_timestamp() THEN
    RAISE EXCEPTION 'tenant purge: the deletion is not due (marked %, purge after %, purged %, restored %)',
      d.marked_at, d.purge_after, d.purged_at, d.restored_at USING ERRCODE = 'check_violation';
  END IF;
  IF EXISTS (SELECT 1 FROM legal_holds WHERE tenant_id = p_tenant AND released_at IS NULL) THEN
    RAISE EXCEPTION 'tenant purge: the tenant is under a legal hold'
      USING ERRCODE = 'check_violation';
  END IF;
  SELECT array_agg(c.relname::text ORDER BY c.relname) INTO v_tables
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
   WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
     AND c.relname NOT IN ('tenants', 'tenant_deletions', 'tenant_deletion_steps');
  PERFORM set_config('trailseal.tenant_purge', p_tenant::text, true);
  v_left := v_tables;
  -- Rows referenced by other tables' rows go after them: repeat until every table is empty
  -- of the tenant (a pass that removes nothing more is an error).
  LOOP
    EXIT WHEN coalesce(array_length(v_left, 1), 0) = 0;
    v_progress := false;
    FOREACH v_table IN ARRAY v_left LOOP
      BEGIN
        EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', v_table) USING p_tenant;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_removed := v_removed || jsonb_build_object(v_table, v_count);
        v_left := array_remove(v_left, v_table);
        v_progress := true;
      EXCEPTION WHEN foreign_key_violation THEN
        NULL;  -- referenced by rows still in another table: next pass
      END;
    END LOOP;
    IF NOT v_progress THEN
      RAISE EXCEPTION 'tenant purge: rows of % could not be removed', v_left
        USING ERRCODE = 'data_corrupted';
    END IF;
  END LOOP;
  PERFORM set_config('trailseal.tenant_purge', '', true);
  v_result := jsonb_build_object(
    'rows_removed', v_removed,
    'data_keys_destroyed', coalesce((v_removed ->> 'tenant_keys')::bigint, 0),
    'subject_keys_destroyed', coalesce((v_removed ->> 'subject_keys')::bigint, 0),
    'events_removed', coalesce((v_removed ->> 'audit_logs')::bigint, 0));
  UPDATE tenant_deletions SET purged_by = p_by, purged_at = clock_timestamp(),
         purge_result = v_result WHERE tenant_id = p_tenant AND id = p_deletion;
  INSERT INTO tenant_deletion_steps (id, tenant_id, deletion_id, step, actor, details)
    VALUES (gen_random_uuid(), p_tenant, p_deletion, 'purged', p_by, v_result);
  RETURN v_result;
END $f$;

CREATE FUNCTION trailseal_tenant_restore(p_tenant uuid, p_deletion uuid, p_by text,
                                         p_reason text)
  RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $f$
DECLARE
  d tenant_deletions%ROWTYPE;
BEGIN
  IF coalesce(p_by, '') = '' OR coalesce(p_reason, '') = '' THEN
    RAISE EXCEPTION 'tenant restore: who restores and why must be given'
      USING ERRCODE = 'check_violation';
  END IF;
  PERFORM set_config('trailseal.tenant_id', p_tenant::text, true);
  SELECT * INTO d FROM tenant_deletions WHERE tenant_id = p_tenant AND id = p_deletion
    FOR UPDATE;
  IF NOT FOUND OR d.confirmed_at IS NULL OR d.purged_at IS NOT NULL
     OR d.restored_at IS NOT NULL THEN
    RAISE EXCEPTION 'tenant restore: deletion % of tenant % is not confirmed and unpurged',
      p_deletion, p_tenant USING ERRCODE = 'check_violation';
  END IF;
  PERFORM set_config('trailseal.tenant_restore', p_tenant::text, true);
  UPDATE chain_heads SET closed_at = NULL WHERE tenant_id = p_tenant;
  PERFORM set_config('trailseal.tenant_restore', '', true);
  UPDATE tenant_deletions SET restored_by = p_by, restored_at = clock_timestamp(),
         restore_reason = p_reason WHERE tenant_id = p_tenant AND id = p_deletion;
  INSERT INTO tenant_deletion_steps (id, tenant_id, deletion_id, step, actor, details)
    VALUES (gen_random_uuid(), p_tenant, p_deletion, 'restored', p_by,
            jsonb_build_object('reason', p_reason));
END $f$;

REVOKE ALL ON FUNCTION trailseal_tenant_purge(uuid, uuid, text),
  trailseal_tenant_restore(uuid, uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trailseal_tenant_purge(uuid, uuid, text),
  trailseal_tenant_restore(uuid, uuid, text, text) TO trailseal_maintenance;
REVOKE ALL ON FUNCTION trailseal_tenant_deleted(uuid), trailseal_open_deletions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trailseal_tenant_deleted(uuid), trailseal_open_deletions()
  TO trailseal_app;

GRANT SELECT, INSERT ON tenant_deletions, tenant_deletion_steps TO trailseal_app;
GRANT UPDATE (confirmed_by, confirmed_at, cancelled_by, cancelled_at, cancel_reason,
              archived_at, archives, head_seq, head_hash, checkpoint_note, public_key,
              marked_at) ON tenant_deletions TO trailseal_app;
"""

POLICY = """
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {t}
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
"""

DOWNGRADE = r"""
DROP FUNCTION IF EXISTS trailseal_tenant_purge(uuid, uuid, text),
  trailseal_tenant_restore(uuid, uuid, text, text), trailseal_open_deletions();
CREATE OR REPLACE FUNCTION trailseal_find_api_key(p_hash bytea)
  RETURNS TABLE (id uuid, tenant_id uuid, name text, permissions text[], revoked_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id, tenant_id, name, permissions, revoked_at FROM api_keys WHERE key_hash = p_hash $f$;
CREATE OR REPLACE FUNCTION trailseal_find_login(p_email text)
  RETURNS TABLE (id uuid, tenant_id uuid, password_hash text, role text, is_active boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id, tenant_id, password_hash, role, is_active FROM users WHERE lower(email) = lower(p_email) $f$;
CREATE OR REPLACE FUNCTION trailseal_tenant_ids()
  RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id FROM tenants ORDER BY created_at $f$;
CREATE OR REPLACE FUNCTION trailseal_due_report_schedules(p_now timestamptz, p_limit integer)
  RETURNS TABLE (tenant_id uuid, id uuid, next_run timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT tenant_id, id, next_run FROM audit_scheduled_reports
         WHERE next_run <= p_now ORDER BY next_run LIMIT p_limit $f$;
DROP FUNCTION IF EXISTS trailseal_tenant_deleted(uuid);
CREATE OR REPLACE FUNCTION trailseal_reject_change() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $f$;
CREATE OR REPLACE FUNCTION trailseal_audit_logs_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
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
DROP TRIGGER IF EXISTS chain_heads_guard ON chain_heads;
DROP FUNCTION IF EXISTS trailseal_chain_head_guard();
ALTER TABLE chain_heads DROP COLUMN IF EXISTS closed_at;
DROP TABLE IF EXISTS tenant_deletion_steps, tenant_deletions;
DROP FUNCTION IF EXISTS trailseal_deletion_guard();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in ("tenant_deletions", "tenant_deletion_steps"):
        op.execute(POLICY.format(t=table))


def downgrade() -> None:
    op.execute(DOWNGRADE)
