"""Shared test helpers. Fixtures come from ``trailseal.testing`` (the pytest11 plugin)."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest


def make_event(**overrides) -> dict:
    """A valid event body; override any field."""
    body = {
        "event_type": "invoice.deleted",
        "occurred_at": "2026-11-20T10:00:00Z",
        "actor": {"id": "u-1", "type": "user", "role": "accountant", "department": "finance"},
        "entity": {"type": "invoice", "id": "INV-1"},
        "severity": "medium",
        "source": "web",
        "ip_address": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "action_details": {"amount": 120.5, "reason": "duplicate"},
        "tags": ["finance"],
    }
    body.update(overrides)
    return body


def ts(days_ago: float = 0, base: datetime | None = None) -> str:
    moment = (base or datetime.now(UTC)) - timedelta(days=days_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Short names for this suite's own tests; plugin authors use the trailseal_* fixtures.
@pytest.fixture
def tenant(trailseal_tenant):
    """``trailseal_tenant``."""
    return trailseal_tenant


@pytest.fixture
def register_plugin(trailseal_register_plugin):
    """``trailseal_register_plugin``."""
    return trailseal_register_plugin


@pytest.fixture
def run_jobs(trailseal_run_jobs):
    """``trailseal_run_jobs``."""
    return trailseal_run_jobs


@pytest.fixture
def event_factory():
    return make_event


@pytest.fixture
def http_receiver():
    """An HTTP server on 127.0.0.1 that records requests (``tests.receivers.HTTPReceiver``)."""
    from tests.receivers import HTTPReceiver

    receiver = HTTPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp_receiver():
    """An SMTP server on 127.0.0.1 (aiosmtpd) keeping what it receives."""
    from tests.receivers import SMTPReceiver

    receiver = SMTPReceiver()
    yield receiver
    receiver.close()


@contextmanager
def owner_connection(services):
    """A connection as the schema owner with triggers off for this session only: the
    tampering attacker with database access that verification must catch."""
    with psycopg.connect(services.config["ADMIN_DATABASE_URL"].replace("+psycopg", ""),
                         autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn


@pytest.fixture
def owner(trailseal_services):
    with owner_connection(trailseal_services) as conn:
        yield conn


def ingest(client, tenant, events: list[dict]) -> dict:
    resp = client.post("/api/v1/events/batch", json={"events": events}, headers=tenant.headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def new_id() -> str:
    return str(uuid.uuid4())
