"""The production path: an external database migrated by its owner, the app connecting as
a separate login role; and the compose file wiring that up."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import yaml

from trailseal.db import with_user_and_db

ROOT = Path(__file__).resolve().parents[2]


def _cli(args, env, instance):
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    full.update(env, TRAILSEAL_INSTANCE_PATH=str(instance))
    return subprocess.run([sys.executable, "-m", "trailseal", *args], env=full, capture_output=True,
                          text=True, timeout=180)


def test_external_database_migrate_and_run(trailseal_services, tmp_path):
    admin_server = trailseal_services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
    dbname = "ext_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    app_user = "web_" + uuid.uuid4().hex[:8]
    env = {
        "TRAILSEAL_ADMIN_DATABASE_URL": with_user_and_db(admin_server, "postgres", dbname),
        "TRAILSEAL_DATABASE_URL": with_user_and_db(admin_server, app_user, dbname, "s3cret-pw"),
        "TRAILSEAL_REDIS_URL": trailseal_services.config["REDIS_URL"],
        "TRAILSEAL_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    no_admin = _cli(["migrate"], {k: v for k, v in env.items() if k != "TRAILSEAL_ADMIN_DATABASE_URL"},
                    tmp_path)
    assert no_admin.returncode != 0 and "TRAILSEAL_ADMIN_DATABASE_URL" in no_admin.stderr
    migrated = _cli(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "0014_tenant_deletion" in migrated.stdout  # the head revision
    again = _cli(["migrate"], env, tmp_path)  # idempotent
    assert again.returncode == 0, again.stderr
    created = _cli(["tenant", "create", "Ext Corp"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert not (tmp_path / "pgdata").exists()  # nothing embedded was started
    verified = _cli(["verify", "--tenant", "ext-corp"], env, tmp_path)
    assert verified.returncode == 0 and "chain intact" in verified.stdout
    as_owner = dict(env, TRAILSEAL_DATABASE_URL=env["TRAILSEAL_ADMIN_DATABASE_URL"])
    refused = _cli(["verify", "--tenant", "ext-corp"], as_owner, tmp_path)
    assert refused.returncode != 0 and "superuser" in refused.stderr
    no_key = {k: v for k, v in env.items() if k != "TRAILSEAL_MASTER_KEY"}
    keyless = _cli(["verify", "--tenant", "ext-corp"], no_key, tmp_path)
    assert keyless.returncode != 0 and "TRAILSEAL_MASTER_KEY" in keyless.stderr


def test_compose_file_separates_owner_and_app_roles():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "scheduler"} <= set(services)
    assert "pgvector" in services["postgres"]["image"]
    for name in ("web", "worker", "scheduler"):
        env = services[name]["environment"]
        assert "trailseal_web" in env["TRAILSEAL_DATABASE_URL"]
        assert "TRAILSEAL_ADMIN_DATABASE_URL" not in env
    assert "trailseal_owner" in services["migrate"]["environment"]["TRAILSEAL_ADMIN_DATABASE_URL"]
    assert services["worker"]["command"] == ["trailseal", "worker"]
    assert services["scheduler"]["command"] == ["trailseal", "scheduler"]
