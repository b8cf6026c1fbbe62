"""Properties 34, 35, 36: dashboard windows exact, rankings correct, breakdowns sum."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import PROPERTY, SEVERITIES, events
from trailseal.testing import make_tenant

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@PROPERTY
@given(batch=st.lists(events(base=AS_OF + timedelta(days=2), span_hours=24 * 35), min_size=1, max_size=30))
def test_properties_34_35_36_dashboard_statistics(trailseal_app, trailseal_services, batch):
    client = trailseal_app.test_client()
    me = make_tenant(trailseal_services)
    assert client.post("/api/v1/events/batch", json={"events": batch}, headers=me.headers).status_code == 201
    stats = client.get("/api/v1/dashboard/stats", query_string={"as_of": AS_OF.isoformat()},
                       headers=me.headers).get_json()

    def window(delta):
        return [e for e in batch if AS_OF - delta < _parse(e["occurred_at"]) <= AS_OF]

    in30 = window(timedelta(days=30))
    # Property 34: exact windows
    assert stats["counts"] == {"24h": len(window(timedelta(hours=24))), "7d": len(window(timedelta(days=7))),
                               "30d": len(in30),
                               "total": sum(_parse(e["occurred_at"]) <= AS_OF for e in batch)}
    # Property 35: rankings by count desc, then name
    for key, field in (("top_actors", lambda e: e["actor"]["id"]), ("top_event_types", lambda e: e["event_type"])):
        counts = Counter(field(e) for e in in30)
        expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        assert [(r["name"], r["count"]) for r in stats[key]] == expected
    # Property 36: breakdowns sum to the window's total and match per value
    assert sum(stats["severity_breakdown"].values()) == len(in30)
    assert stats["severity_breakdown"] == {s: sum(e["severity"] == s for e in in30) for s in SEVERITIES}
    assert sum(stats["category_breakdown"].values()) == len(in30)
