"""Dashboard statistics: caching and exactness (the property test covers the invariants)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import ingest, make_event


def test_stats_windows_rankings_and_cache(trailseal_client, tenant):
    now = datetime.now(UTC).replace(microsecond=0)
    def at(hours):
        return (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = (
        [make_event(occurred_at=at(1), actor={"id": "alice", "type": "user"}, severity="high")] * 3
        + [make_event(occurred_at=at(30), actor={"id": "bob", "type": "user"}, event_type="user.login")] * 2
        + [make_event(occurred_at=at(24 * 10), actor={"id": "carol", "type": "user"}, severity="low")]
        + [make_event(occurred_at=at(24 * 40))]
    )
    ingest(trailseal_client, tenant, events)
    first = trailseal_client.get("/api/v1/dashboard/stats", headers=tenant.headers).get_json()
    assert first["counts"] == {"24h": 3, "7d": 5, "30d": 6, "total": 7}
    assert [a["name"] for a in first["top_actors"]] == ["alice", "bob", "carol"]
    assert first["top_event_types"][0] == {"name": "invoice.deleted", "count": 4}
    assert first["severity_breakdown"] == {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 0}
    assert sum(first["category_breakdown"].values()) == 6
    assert first["cached"] is False
    ingest(trailseal_client, tenant, [make_event(occurred_at=at(2))])
    second = trailseal_client.get("/api/v1/dashboard/stats", headers=tenant.headers).get_json()
    assert second["cached"] is True and second["counts"] == first["counts"]
    fresh = trailseal_client.get("/api/v1/dashboard/stats", query_string={"as_of": now.isoformat()},
                                 headers=tenant.headers).get_json()
    assert fresh["counts"]["24h"] == 4


def test_stats_rejects_bad_parameters(trailseal_client, tenant):
    assert trailseal_client.get("/api/v1/dashboard/stats?as_of=nope", headers=tenant.headers).status_code == 422
    assert trailseal_client.get("/api/v1/dashboard/stats?window=1", headers=tenant.headers).status_code == 422
