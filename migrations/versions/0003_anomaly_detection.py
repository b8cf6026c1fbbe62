"""Anomaly detection: the model registry, the prediction log, analyst feedback on alerts,
fairness figures, per-tenant behaviour profiles and per-tenant settings.

- ``audit_ml_models``: every trained model of a tenant (type, training window, feature
  list, metrics, artifact as data, never a pickle), one active per type.
- ``ai_predictions``: every prediction any detector or classifier made (model version,
  score, confidence, features used, review flag). Insert-only.
- ``anomaly_feedback``: an analyst's verdict on an alert (false positive or confirmed),
  with who and when. Insert-only; the latest verdict per alert counts.
- ``bias_metrics``: detection rates per group (actor role, department, entity type) and
  overall, recorded on each detection run. Insert-only.
- ``detector_profiles``: the incremental per-tenant behaviour profile a detector keeps.
- ``tenant_settings``: per-tenant settings such as the anomaly threshold.

Revision ID: 0003_anomaly_detection
Revises: 0002_user_sessions
Create Date: 2026-11-27
"""

from alembic import op

revision = "0003_anomaly_detection"
down_revision = "0002_user_sessions"
branch_labels = None
depends_on = None

TABLES = ("audit_ml_models", "ai_predictions", "anomaly_feedback", "bias_metrics",
          "detector_profiles", "tenant_settings")

UPGRADE = r"""
CREATE TABLE audit_ml_models (
  id uuid NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  model_type text NOT NULL,
  version text NOT NULL,
  trained_from timestamptz,
  trained_to timestamptz,
  training_events integer NOT NULL,
  features jsonb NOT NULL,
  params jsonb NOT NULL DEFAULT '{}',
  metrics jsonb NOT NULL DEFAULT '{}',
  artifact bytea NOT NULL,
  artifact_format text NOT NULL,
  artifact_sha256 text NOT NULL,
  is_active boolean NOT NULL DEFAULT false,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, model_type, version)
);
CREATE UNIQUE INDEX audit_ml_models_active ON audit_ml_models (tenant_id, model_type)
  WHERE is_active;

CREATE TABLE ai_predictions (
  id bigserial NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  event_id uuid NOT NULL,
  kind text NOT NULL,
  producer text NOT NULL,
  model_version text NOT NULL,
  score double precision,
  label text,
  confidence double precision,
  review_required boolean NOT NULL DEFAULT false,
  features jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, event_id) REFERENCES audit_logs (tenant_id, id)
);
CREATE INDEX ai_predictions_event_idx ON ai_predictions (tenant_id, event_id, created_at DESC);
CREATE INDEX ai_predictions_producer_idx ON ai_predictions (tenant_id, producer, created_at DESC);

CREATE TABLE anomaly_feedback (
  id bigserial NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  alert_id uuid NOT NULL,
  event_id uuid,
  is_false_positive boolean NOT NULL,
  notes text NOT NULL DEFAULT '',
  given_by text NOT NULL,
  given_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, alert_id) REFERENCES audit_anomalies (tenant_id, id)
);
CREATE INDEX anomaly_feedback_alert_idx ON anomaly_feedback (tenant_id, alert_id, given_at DESC);

CREATE TABLE bias_metrics (
  id bigserial NOT NULL,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  run_id uuid NOT NULL,
  model_version text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end timestamptz NOT NULL,
  dimension text NOT NULL,
  grp text NOT NULL,
  events integer NOT NULL,
  flagged integer NOT NULL,
  rate double precision NOT NULL,
  overall_rate double precision NOT NULL,
  ci_low double precision NOT NULL,
  ci_high double precision NOT NULL,
  status text NOT NULL CHECK (status IN ('ok', 'too_small', 'alert')),
  computed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX bias_metrics_run_idx ON bias_metrics (tenant_id, computed_at DESC);

CREATE TABLE detector_profiles (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  detector text NOT NULL,
  through_seq bigint NOT NULL,
  state bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, detector)
);

CREATE TABLE tenant_settings (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  key text NOT NULL,
  value jsonb NOT NULL,
  updated_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);

-- Finding anomalies fast: the flagged events of a tenant by score.
CREATE INDEX event_insights_anomaly_idx ON event_insights (tenant_id, anomaly_score DESC)
  WHERE is_anomaly;

-- Judging anomalies (analyst feedback) is a permission of its own, held by analysts and
-- admins.
UPDATE roles SET permissions = array_append(permissions, 'audit:review')
  WHERE name IN ('analyst', 'admin') AND NOT 'audit:review' = ANY(permissions);

GRANT SELECT, INSERT ON audit_ml_models, ai_predictions, anomaly_feedback, bias_metrics
  TO trailseal_app;
GRANT UPDATE (is_active) ON audit_ml_models TO trailseal_app;
GRANT SELECT, INSERT, UPDATE ON detector_profiles, tenant_settings TO trailseal_app;
GRANT DELETE ON detector_profiles TO trailseal_app;
GRANT USAGE ON SEQUENCE ai_predictions_id_seq, anomaly_feedback_id_seq, bias_metrics_id_seq
  TO trailseal_app;
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
    op.execute("UPDATE roles SET permissions = array_remove(permissions, 'audit:review')")
    op.execute("DROP INDEX IF EXISTS event_insights_anomaly_idx")
    op.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(TABLES))}")
