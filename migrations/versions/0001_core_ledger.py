"""Core ledger: tenants, users, API keys, data keys, the append-only audit log and its
hash-chain head, insights, alerts, idempotency records and the access log, all under
row-level security for the non-owner role ``trailseal_app``.

Revision ID: 0001_core_ledger
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "0001_core_ledger"
down_revision = None
branch_labels = None
depends_on = None

TENANT_TABLES = [
    "users",
    "api_keys",
    "tenant_keys",
    "chain_heads",
    "audit_logs",
    "event_insights",
    "audit_embeddings",
    "audit_anomalies",
    "idempotency_keys",
    "audit_access_log",
]

UPGRADE = r"""
CREATE EXTENSION IF NOT EXISTS vector;

DO $$ BEGIN
  CREATE ROLE trailseal_app NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE FUNCTION trailseal_current_tenant() RETURNS uuid
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $f$ SELECT NULLIF(current_setting('trailseal.tenant_id', true), '')::uuid $f$;

CREATE FUNCTION trailseal_reject_change() RETURNS trigger
  LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $f$;

CREATE TABLE tenants (
  id uuid PRIMARY KEY,
  slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
  name text PRIMARY KEY,
  permissions text[] NOT NULL
);
INSERT INTO roles VALUES
  ('viewer',  ARRAY['audit:read']),
  ('analyst', ARRAY['audit:read','audit:export']),
  ('writer',  ARRAY['audit:write']),
  ('admin',   ARRAY['audit:read','audit:export','audit:write','audit:admin']);

CREATE TABLE users (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  email text NOT NULL,
  password_hash text NOT NULL,
  role text NOT NULL REFERENCES roles(name),
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  name text NOT NULL,
  prefix text NOT NULL,
  key_hash bytea NOT NULL UNIQUE,
  permissions text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE TABLE tenant_keys (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  key_id text NOT NULL,
  wrapped_key bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, key_id)
);

CREATE TABLE chain_heads (
  tenant_id uuid PRIMARY KEY REFERENCES tenants(id),
  last_seq bigint NOT NULL DEFAULT 0,
  last_hash text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The ledger. ``record`` holds the canonical JSON that ``hash`` covers (ciphertext of the
-- sensitive fields lives only there); the other columns project it for indexing. No FK on
-- tenant_id: RLS pins every row to the current tenant and appends lock the tenant's
-- chain_heads row, which references tenants.
CREATE TABLE audit_logs (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL,
  seq bigint NOT NULL CHECK (seq > 0),
  occurred_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  event_type text NOT NULL,
  actor_id text NOT NULL,
  actor_type text NOT NULL,
  actor_role text,
  actor_department text,
  entity_type text NOT NULL,
  entity_id text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('info','low','medium','high','critical')),
  source text,
  tags text[] NOT NULL DEFAULT '{}',
  key_id text NOT NULL,
  idempotency_key text,
  previous_hash text NOT NULL,
  hash text NOT NULL,
  record bytea NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_logs_time_idx ON audit_logs (tenant_id, occurred_at DESC, seq DESC);
CREATE INDEX audit_logs_type_idx ON audit_logs (tenant_id, event_type, occurred_at DESC, seq DESC);
CREATE INDEX audit_logs_actor_idx ON audit_logs (tenant_id, actor_id, occurred_at DESC, seq DESC);
CREATE INDEX audit_logs_entity_idx ON audit_logs (tenant_id, entity_type, entity_id, occurred_at DESC);
CREATE INDEX audit_logs_severity_idx ON audit_logs (tenant_id, severity, occurred_at DESC, seq DESC);

CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION trailseal_reject_change();

CREATE TABLE event_insights (
  event_id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  anomaly_score double precision,
  is_anomaly boolean,
  category text,
  risk_level text,
  tags text[] NOT NULL DEFAULT '{}',
  ai_insights jsonb NOT NULL DEFAULT '{}',
  model_versions jsonb NOT NULL DEFAULT '{}',
  review_required boolean NOT NULL DEFAULT false,
  enriched_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id),
  FOREIGN KEY (tenant_id, event_id) REFERENCES audit_logs (tenant_id, id)
);
CREATE INDEX event_insights_tenant_idx ON event_insights (tenant_id, category, risk_level);

CREATE TABLE audit_embeddings (
  event_id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  model text NOT NULL,
  dims integer NOT NULL,
  embedding vector NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id, model),
  FOREIGN KEY (tenant_id, event_id) REFERENCES audit_logs (tenant_id, id)
);

CREATE TABLE audit_anomalies (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  event_id uuid,
  kind text NOT NULL,
  severity text NOT NULL,
  title text NOT NULL,
  details jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
  dedupe_key text,
  status_changed_by text,
  status_changed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, event_id) REFERENCES audit_logs (tenant_id, id)
);
CREATE INDEX audit_anomalies_tenant_idx ON audit_anomalies (tenant_id, created_at DESC);
-- One alert per distinct finding (a chain break at one seq, one anomalous event), whatever
-- its status: re-verifying a known break or re-scoring an event never raises it again.
CREATE UNIQUE INDEX audit_anomalies_dedupe ON audit_anomalies (tenant_id, kind, dedupe_key);

CREATE TABLE idempotency_keys (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  key text NOT NULL,
  request_hash text NOT NULL,
  status_code integer NOT NULL,
  response jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);

CREATE TABLE audit_access_log (
  id bigserial NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  principal_type text NOT NULL,
  principal_id text NOT NULL,
  endpoint text NOT NULL,
  method text NOT NULL,
  query jsonb NOT NULL DEFAULT '{}',
  remote_addr text,
  accessed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_access_log_tenant_idx ON audit_access_log (tenant_id, accessed_at DESC);
CREATE TRIGGER audit_access_log_append_only BEFORE UPDATE OR DELETE ON audit_access_log
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();
CREATE TRIGGER audit_access_log_no_truncate BEFORE TRUNCATE ON audit_access_log
  FOR EACH STATEMENT EXECUTE FUNCTION trailseal_reject_change();

-- Look-ups that must cross tenants before a tenant is known: the only doors through RLS.
CREATE FUNCTION trailseal_find_api_key(p_hash bytea)
  RETURNS TABLE (id uuid, tenant_id uuid, name text, permissions text[], revoked_at timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id, tenant_id, name, permissions, revoked_at FROM api_keys WHERE key_hash = p_hash $f$;

CREATE FUNCTION trailseal_find_login(p_email text)
  RETURNS TABLE (id uuid, tenant_id uuid, password_hash text, role text, is_active boolean)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id, tenant_id, password_hash, role, is_active FROM users WHERE lower(email) = lower(p_email) $f$;

CREATE FUNCTION trailseal_resolve_tenant(p_ref text)
  RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id FROM tenants WHERE slug = lower(p_ref) OR id::text = lower(p_ref) LIMIT 1 $f$;

CREATE FUNCTION trailseal_tenant_ids()
  RETURNS SETOF uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
  AS $f$ SELECT id FROM tenants ORDER BY created_at $f$;

REVOKE ALL ON FUNCTION trailseal_find_api_key(bytea), trailseal_find_login(text),
  trailseal_resolve_tenant(text), trailseal_tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trailseal_find_api_key(bytea), trailseal_find_login(text),
  trailseal_resolve_tenant(text), trailseal_tenant_ids(), trailseal_current_tenant() TO trailseal_app;

GRANT USAGE ON SCHEMA public TO trailseal_app;
GRANT SELECT ON roles TO trailseal_app;
GRANT SELECT, INSERT ON tenants, users, api_keys, tenant_keys, audit_logs, audit_access_log,
  audit_anomalies TO trailseal_app;
GRANT SELECT, INSERT, UPDATE ON chain_heads, event_insights, audit_embeddings TO trailseal_app;
GRANT UPDATE (status, status_changed_by, status_changed_at) ON audit_anomalies TO trailseal_app;
GRANT UPDATE (revoked_at) ON api_keys TO trailseal_app;
GRANT UPDATE (password_hash, role, is_active) ON users TO trailseal_app;
GRANT SELECT, INSERT, DELETE ON idempotency_keys TO trailseal_app;
GRANT USAGE ON SEQUENCE audit_access_log_id_seq TO trailseal_app;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
  USING (id = trailseal_current_tenant()) WITH CHECK (id = trailseal_current_tenant());
"""

POLICY = """
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {t}
  USING (tenant_id = trailseal_current_tenant())
  WITH CHECK (tenant_id = trailseal_current_tenant());
"""

DOWNGRADE = """
DROP FUNCTION IF EXISTS trailseal_find_api_key(bytea), trailseal_find_login(text),
  trailseal_resolve_tenant(text), trailseal_tenant_ids();
DROP TABLE IF EXISTS audit_access_log, idempotency_keys, audit_anomalies, audit_embeddings,
  event_insights, audit_logs, chain_heads, tenant_keys, api_keys, users, roles, tenants CASCADE;
DROP FUNCTION IF EXISTS trailseal_reject_change(), trailseal_current_tenant();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for table in TENANT_TABLES:
        op.execute(POLICY.format(t=table))


def downgrade() -> None:
    op.execute(DOWNGRADE)
