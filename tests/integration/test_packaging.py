"""The wheel: built from exactly what the Dockerfile copies, it holds the core, the migrations
(top-level ``migrations/`` shipped as ``trailseal.migrations``) and the first-party plugins;
installed into a fresh virtualenv it migrates a database on its own."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest

from trailseal.db import with_user_and_db

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_copies(dockerfile: Path) -> list[tuple[str, str]]:
    """(source, destination relative to the WORKDIR) of every COPY line of the build stage."""
    copies = []
    logical = dockerfile.read_text().replace("\\\n", " ")  # continuation lines joined
    for raw in logical.splitlines():
        words = shlex.split(raw, comments=True) if raw.strip() else []
        if not words or words[0].upper() != "COPY":
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        *sources, dest = args
        dest = dest.removeprefix("/app").lstrip("/").removeprefix("./")
        for source in sources:
            if len(sources) > 1 or dest in ("", "."):
                copies.append((source, str(Path(dest or ".") / Path(source).name)))
            else:
                copies.append((source, dest))
    return copies


@pytest.fixture(scope="module")
def docker_wheel(tmp_path_factory) -> Path:
    """The wheel ``pip install .`` builds inside the image, from the Dockerfile's COPY paths
    only (built offline with this environment's setuptools)."""
    context = tmp_path_factory.mktemp("docker-context")
    copies = dockerfile_copies(ROOT / "Dockerfile")
    assert copies, "the Dockerfile copies nothing"
    for source, dest in copies:
        src, dst = ROOT / source, context / dest
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst)
    out = tmp_path_factory.mktemp("wheelhouse")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(context)],
        capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("trailseal-*.whl")
    return wheel


def test_dockerfile_copies_what_the_wheel_needs(docker_wheel):
    names = set(zipfile.ZipFile(docker_wheel).namelist())
    for name in ("trailseal/__init__.py", "trailseal/cli/__init__.py", "trailseal/cli/runtime.py",
                 "trailseal/migrations/env.py", "trailseal/migrations/alembic.ini",
                 "trailseal/migrations/script.py.mako",
                 "trailseal/migrations/versions/0001_core_ledger.py",
                 "trailseal/migrations/versions/0002_user_sessions.py",
                 "trailseal/migrations/versions/0003_anomaly_detection.py",
                 "trailseal/migrations/versions/0004_classification.py",
                 "trailseal/migrations/versions/0005_semantic_search.py",
                 "trailseal/migrations/versions/0010_usage.py",
                 "trailseal/migrations/versions/0013_search_rank.py",
                 "trailseal/migrations/versions/0014_tenant_deletion.py",
                 "trailseal/migrations/versions/0011_retention.py",
                 "trailseal/migrations/versions/0012_erasure.py",
                 "trailseal/migrations/versions/0006_integrations.py",
                 "trailseal/migrations/versions/0007_scheduled_reports.py",
                 "trailseal_plugins/reports/__init__.py",
                 "trailseal/migrations/versions/0008_summaries.py",
                 "trailseal/migrations/versions/0009_checkpoints.py",
                 "trailseal_verify/__init__.py", "trailseal_verify/cli.py",
                 "trailseal_verify/merkle.py", "trailseal_verify/note.py",
                 "trailseal_verify/records.py", "trailseal_verify/bundle.py",
                 "trailseal_plugins/embed_local/__init__.py",
                 "trailseal_plugins/embed_local/tokenizer.json.gz",
                 "trailseal_plugins/narrate_local.py",
                 "trailseal_plugins/embed_openai.py", "trailseal_plugins/narrate_openai.py",
                 "trailseal_plugins/openai_client.py",
                 "trailseal_plugins/anomaly/__init__.py", "trailseal_plugins/anomaly/forest.py",
                 "trailseal_plugins/anomaly/baseline_features.csv.gz",
                 "trailseal_plugins/demo/__init__.py", "trailseal_plugins/demo/command.py",
                 "trailseal_plugins/demo/loader.py", "trailseal_plugins/demo/data.py",
                 "trailseal_plugins/exports/__init__.py",
                 "trailseal_plugins/exports/pdf_format.py",
                 "trailseal_plugins/notify/__init__.py", "trailseal_plugins/notify/webhook.py",
                 "trailseal_dashboards/__init__.py"):
        assert name in names, name
    assert not any(n.startswith(("migrations/", "platform/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(docker_wheel).read(entry_points).decode()
    assert "trailseal = trailseal.cli:main" in text
    assert "trailseal-verify = trailseal_verify.cli:main" in text
    assert "demo = trailseal_plugins.demo" in text
    assert "exports = trailseal_plugins.exports" in text
    for channel in ("slack", "teams", "zapier", "webhook", "email"):
        assert f"{channel} = trailseal_plugins.notify.{channel}" in text


@pytest.fixture(scope="module")
def wheel_venv(docker_wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with only the wheel installed. Its dependencies come from this
    environment's site-packages through a .pth file (offline); this environment's own
    (editable) trailseal is never imported there, because the wheel's comes first."""
    venv = tmp_path_factory.mktemp("wheel-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=300)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", str(docker_wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "_trailseal_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRAILSEAL_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_migrate(wheel_venv, trailseal_services, tmp_path):
    where = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c",
         "import trailseal, trailseal.migrations; print(trailseal.__file__); "
         "print(trailseal.migrations.__file__)"],
        env=_clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(wheel_venv)), where.stdout  # not the source tree

    admin_server = trailseal_services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
    dbname = "wheel_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    env = _clean_env(
        TRAILSEAL_ADMIN_DATABASE_URL=with_user_and_db(admin_server, "postgres", dbname),
        TRAILSEAL_DATABASE_URL=with_user_and_db(admin_server, "web_" + uuid.uuid4().hex[:8],
                                                dbname, "s3cret-pw"),
        TRAILSEAL_REDIS_URL=trailseal_services.config["REDIS_URL"],
        TRAILSEAL_INSTANCE_PATH=str(tmp_path),
    )
    migrated = subprocess.run([str(wheel_venv / "bin" / "trailseal"), "migrate"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    assert "0014_tenant_deletion" in migrated.stdout  # the head revision, from the wheel's scripts
    with psycopg.connect(with_user_and_db(admin_server, "postgres", dbname)) as conn:
        assert conn.execute("SELECT to_regclass('audit_logs')").fetchone()[0] == "audit_logs"

    helped = subprocess.run([str(wheel_venv / "bin" / "trailseal"), "--help"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert " demo " in helped.stdout  # the first-party plugin, found through its entry point
