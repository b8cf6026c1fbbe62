"""Retention never removes held events: for random chains (expired and recent events,
entities), legal holds (per entity, tenant-wide), checkpoints and requested purge points, the
database's purge removes only an expired, unheld, checkpointed prefix in blocks of 64, and
the boundary it offers is exactly the one computed here from the rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_event
from tests.property.strategies import PROPERTY
from trailseal.db import maintenance_connection
from trailseal.services.access import AccessRecord
from trailseal.services.checkpoints import make_checkpoint
from trailseal.services.ingest import append_events, validate_events
from trailseal.services.retention import create_hold
from trailseal.services.tenancy import Principal, create_tenant

ENTITIES = [f"E{i}" for i in range(5)]
NOW = datetime.now(UTC)


@st.composite
def chains(draw):
    n = draw(st.integers(1, 200))
    expired_prefix = draw(st.integers(0, n))
    # After the expired prefix, mostly recent events with some expired ones among them.
    expired = [True] * expired_prefix + draw(st.lists(st.booleans(), min_size=n - expired_prefix,
                                                      max_size=n - expired_prefix))
    entities = draw(st.lists(st.sampled_from(ENTITIES), min_size=n, max_size=n))
    held = draw(st.sets(st.sampled_from(ENTITIES), max_size=3))
    tenant_hold = draw(st.integers(0, 9)) == 0  # one case in ten
    after_checkpoint = draw(st.integers(0, 70))  # expired events no checkpoint covers
    requested = draw(st.integers(1, n + after_checkpoint + 64))
    return expired, entities, held, tenant_hold, after_checkpoint, requested


def _append(svc, tid, flags, entities):
    events = [make_event(occurred_at=(NOW - timedelta(days=4000 if old else 1)).isoformat(),
                         entity={"type": "doc", "id": entity})
              for old, entity in zip(flags, entities, strict=True)]
    for start in range(0, len(events), 1000):
        append_events(svc, tid, validate_events(events[start:start + 1000]))


def _model(flags, entities, held, tenant_hold, covered) -> int:
    """The boundary by the rules: the first event that must stay, rounded down to 64."""
    if tenant_hold:
        return 0
    stop = covered + 1
    for seq, (old, entity) in enumerate(zip(flags, entities, strict=False), start=1):
        if seq >= stop:
            break
        if not old or entity in held:
            stop = seq
            break
    return (stop - 1) // 64 * 64


def _stored(svc, tid) -> dict[int, str]:
    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT seq, entity_id FROM audit_logs ORDER BY seq")
        return dict(cur.fetchall())


def _purge(url, tid, through) -> int:
    with maintenance_connection(url) as conn:
        return conn.execute("SELECT trailseal_retention_purge(%s, %s, 'prop.tsarc', "
                            "repeat('a', 64), 'test')", (tid, through)).fetchone()[0]


@pytest.mark.slow  # 100 tenants, each with up to 270 events, a checkpoint and purges
@PROPERTY
@given(case=chains())
def test_retention_never_removes_held_events(trailseal_services, case):
    expired, entities, held, tenant_hold, after_checkpoint, requested = case
    svc = trailseal_services
    slug = "p-" + uuid.uuid4().hex[:12]
    tid = uuid.UUID(create_tenant(svc, slug, slug)["id"])
    _append(svc, tid, expired, entities)
    make_checkpoint(svc, tid, publish=False)
    covered = len(expired)
    if after_checkpoint:
        _append(svc, tid, [True] * after_checkpoint, ["E0"] * after_checkpoint)
    flags = expired + [True] * after_checkpoint
    all_entities = entities + ["E0"] * after_checkpoint
    admin = Principal("user", "prop", tid, frozenset({"audit:admin"}))
    access = AccessRecord("/api/v1/legal-holds", "POST")
    for entity in sorted(held):
        create_hold(svc, admin, "entity", "doc", entity, "property test", access)
    if tenant_hold:
        create_hold(svc, admin, "tenant", None, None, "property test", access)
    url = svc.config["MAINTENANCE_DATABASE_URL"]
    expected = _model(flags, all_entities, held, tenant_hold, covered)
    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT trailseal_retention_boundary(%s)", (tid,))
        assert cur.fetchone()[0] == expected

    before = _stored(svc, tid)
    # Any purge point asked for: refused, or exactly an allowed prefix removed.
    try:
        removed = _purge(url, tid, requested)
    except psycopg.errors.CheckViolation:
        assert requested > expected or requested % 64 or tenant_hold
        assert _stored(svc, tid) == before  # nothing half-done
        removed = 0
    else:
        assert requested <= expected and requested % 64 == 0 and removed == requested
    # The boundary the database offers always goes through (when there is anything).
    if expected > removed:
        assert _purge(url, tid, expected) == expected - removed
    after = _stored(svc, tid)
    gone = set(before) - set(after)
    assert gone == set(range(1, max(removed, expected if expected > removed else 0) + 1))
    for seq in gone:
        assert flags[seq - 1] and all_entities[seq - 1] not in held and not tenant_hold
        assert seq <= covered
    assert all(after[seq] == before[seq] for seq in after)
