"""Signed Merkle checkpoints: the instance's signing key, each tenant's checkpoints and
the stored subtree hashes of its Merkle tree.

- ``checkpoint_keys``: the instance's Ed25519 key that signs checkpoints. The private key
  is stored wrapped by the master key (AES-GCM, like the tenants' data keys); only the
  public key ever leaves the server. Not tenant data, so no row-level security; the app
  role may read and add keys, never change or remove one.
- ``chain_checkpoints``: per tenant, the tree size, root hash and signed note (C2SP
  tlog-checkpoint) of each checkpoint; append-only.
- ``merkle_nodes``: per tenant, the hashes of the complete subtrees of 2^k leaves
  (k >= 6) of the tenant's tree, filled as checkpoints are made, so proofs over millions
  of events read a few rows; append-only.

Revision ID: 0009_checkpoints
Revises: 0008_summaries
Create Date: 2026-11-28
"""

from alembic import op

revision = "0009_checkpoints"
down_revision = "0008_summaries"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE checkpoint_keys (
  name text PRIMARY KEY CHECK (name ~ '^[!-*,-~]+$'),
  public_key bytea NOT NULL CHECK (length(public_key) = 32),
  wrapped_private_key bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE chain_checkpoints (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  tree_size bigint NOT NULL CHECK (tree_size > 0),
  root bytea NOT NULL CHECK (length(root) = 32),
  key_name text NOT NULL REFERENCES checkpoint_keys(name),
  note text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, tree_size)
);

CREATE TABLE merkle_nodes (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  level smallint NOT NULL CHECK (level >= 0 AND level < 64),
  index bigint NOT NULL CHECK (index >= 0),
  hash bytea NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (tenant_id, level, index)
);

CREATE TRIGGER checkpoint_keys_append_only BEFORE UPDATE OR DELETE ON checkpoint_keys
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();
CREATE TRIGGER chain_checkpoints_append_only BEFORE UPDATE OR DELETE ON chain_checkpoints
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();
CREATE TRIGGER chain_checkpoints_no_truncate BEFORE TRUNCATE ON chain_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION trailseal_reject_change();
CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
  FOR EACH ROW EXECUTE FUNCTION trailseal_reject_change();

GRANT SELECT, INSERT ON checkpoint_keys, chain_checkpoints, merkle_nodes TO trailseal_app;
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
    for table in ("chain_checkpoints", "merkle_nodes"):
        op.execute(POLICY.format(t=table))


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS merkle_nodes, chain_checkpoints, checkpoint_keys")
