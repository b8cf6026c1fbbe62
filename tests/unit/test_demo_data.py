"""Unit tests of the demo data set generator (no database needed)."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from trailseal.schemas import EventIn
from trailseal_plugins.demo.data import (
    DemoTenant,
    PlantedIncident,
    demo_tenants,
    generate_events,
    planted_incidents,
)

END = datetime(2024, 11, 18, 9, 30, tzinfo=UTC)
SLUGS = ("acme", "globex", "initech")
# Each tenant's home time zone, as the generator's working-hours rhythm assumes.
TIMEZONES = {"acme": "America/New_York", "globex": "Europe/Berlin", "initech": "America/Chicago"}
HIGH = {"high", "critical"}


def _at(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def _off_hours(event: dict, slug: str) -> bool:
    local = _at(event).astimezone(ZoneInfo(TIMEZONES[slug]))
    return local.weekday() >= 5 or local.hour < 7 or local.hour >= 20


@pytest.fixture(scope="module")
def default_events() -> dict[str, list[dict]]:
    return {slug: generate_events(slug, end=END) for slug in SLUGS}


def test_three_fixed_tenants_each_with_an_admin():
    tenants = demo_tenants()
    assert [t.slug for t in tenants] == list(SLUGS)
    assert all(isinstance(t, DemoTenant) for t in tenants)
    assert len({t.name for t in tenants}) == 3
    assert tenants == demo_tenants()
    emails = [u["email"] for t in tenants for u in t.users]
    assert len(emails) == len(set(emails))
    for tenant in tenants:
        assert any(u["role"] == "admin" for u in tenant.users)
        for user in tenant.users:
            assert user["role"] in {"admin", "analyst", "viewer"}
            assert len(user["password"]) >= 10
            assert "@" in user["email"] and "." in user["email"].split("@")[1]


@pytest.mark.parametrize("slug", SLUGS)
def test_every_event_matches_the_api_body(default_events, slug):
    allowed = set(EventIn.model_fields)
    for event in default_events[slug]:
        assert set(event) <= allowed
        model = EventIn.model_validate(event)
        assert event["occurred_at"].endswith("Z")
        assert len(event["tags"]) <= 50
        for tag in event["tags"]:
            assert 0 < len(tag) <= 64 and tag.isprintable()
        assert model.tags == event["tags"]  # no duplicate tags to drop
        assert "\x00" not in json.dumps(event)


@pytest.mark.parametrize("slug", SLUGS)
def test_no_giveaway_words_in_event_data(default_events, slug):
    text = json.dumps(default_events[slug]).lower()
    for word in ("demo", "planted", "synthetic", "fake"):
        assert word not in text


@pytest.mark.parametrize("slug", SLUGS)
def test_deterministic(default_events, slug):
    again = generate_events(slug, end=END)
    assert again == default_events[slug]
    assert planted_incidents(slug, again) == planted_incidents(slug, default_events[slug])
    assert generate_events(slug, end=END, seed=8) != default_events[slug]


def test_naive_end_is_utc():
    naive = END.replace(tzinfo=None)
    assert generate_events("acme", days=2, end=naive) == generate_events("acme", days=2, end=END)


@pytest.mark.parametrize("slug", SLUGS)
def test_sorted_by_time(default_events, slug):
    times = [_at(e) for e in default_events[slug]]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("days", "per_day"), [(28, 150), (7, 60), (3, 400), (14, 40)]
)
@pytest.mark.parametrize("slug", SLUGS)
def test_volume_within_bounds(slug, days, per_day):
    events = (
        generate_events(slug, end=END) if (days, per_day) == (28, 150)
        else generate_events(slug, days=days, events_per_day=per_day, end=END)
    )
    target = days * per_day
    assert 0.7 * target <= len(events) <= 1.3 * target


@pytest.mark.parametrize("days", [28, 5, 1])
@pytest.mark.parametrize("slug", SLUGS)
def test_events_span_the_requested_days(slug, days):
    events = generate_events(slug, days=days, events_per_day=150, end=END)
    first, last = _at(events[0]), _at(events[-1])
    assert END - timedelta(days=days) <= first and last < END
    assert first < END - timedelta(days=days) + timedelta(days=1)
    assert last > END - timedelta(days=1)
    covered = {(END - _at(e)) // timedelta(days=1) for e in events}
    assert covered == set(range(days))


def test_default_end_is_now():
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    events = generate_events("globex", days=1, events_per_day=30)
    after = datetime.now(UTC)
    assert events
    assert all(before - timedelta(days=1, minutes=1) <= _at(e) < after for e in events)


@pytest.mark.parametrize("slug", SLUGS)
def test_working_week_rhythm_and_cast(default_events, slug):
    events = default_events[slug]
    people = [e for e in events if e["actor"]["type"] == "user"]
    busy = sum(not _off_hours(e, slug) for e in people)
    assert busy / len(people) > 0.85
    users = {e["actor"]["id"] for e in people}
    assert 15 <= len(users) <= 45
    services = {e["actor"]["id"] for e in events if e["actor"]["type"] in {"service", "api_key"}}
    assert 2 <= len(services) <= 8
    # Each person keeps one role and department, and uses only a handful of addresses.
    profile: dict[str, tuple] = {}
    addresses: dict[str, set] = {}
    for e in people:
        actor = e["actor"]
        key = (actor.get("role"), actor.get("department"))
        if actor["id"] in profile and profile[actor["id"]] != key:
            assert actor.get("role") == "admin"  # the self-escalation incident
        profile.setdefault(actor["id"], key)
        addresses.setdefault(actor["id"], set()).add(e["ip_address"])
    assert {d for _, d in profile.values()} >= {
        "finance", "engineering", "sales", "support", "security", "hr"
    }
    assert statistics.median(len(a) for a in addresses.values()) <= 4


@pytest.mark.parametrize("slug", SLUGS)
def test_planted_incidents_found_and_anomalous(default_events, slug):
    events = default_events[slug]
    incidents = planted_incidents(slug, events)
    assert len(incidents) >= 3
    assert len({i.name for i in incidents}) == len(incidents)
    seen: set[int] = set()
    baseline_max: dict[str, float] = {}
    flagged = {i for inc in incidents for i in inc.event_indices}
    for index, event in enumerate(events):
        amount = (event.get("action_details") or {}).get("amount")
        if index not in flagged and isinstance(amount, int | float):
            key = event["event_type"]
            baseline_max[key] = max(baseline_max.get(key, 0.0), amount)
    for inc in incidents:
        assert isinstance(inc, PlantedIncident)
        assert inc.tenant_slug == slug
        assert inc.description and inc.description.endswith(".")
        assert len(inc.event_indices) >= 3
        assert inc.event_indices == sorted(set(inc.event_indices))
        assert all(0 <= i < len(events) for i in inc.event_indices)
        assert seen.isdisjoint(inc.event_indices)
        seen.update(inc.event_indices)
        members = [events[i] for i in inc.event_indices]
        assert any(e["severity"] in HIGH for e in members), inc.name
        for event in members:
            amount = (event.get("action_details") or {}).get("amount")
            large = isinstance(amount, int | float) and amount > 2 * baseline_max.get(
                event["event_type"], float("inf")
            )
            assert event["severity"] in HIGH or _off_hours(event, slug) or large, (inc.name, event)
        # An incident is one episode: a few hours at most.
        assert _at(members[-1]) - _at(members[0]) <= timedelta(hours=3)


def test_incident_kinds_differ_across_tenants(default_events):
    names = {slug: {i.name for i in planted_incidents(slug, default_events[slug])}
             for slug in SLUGS}
    assert names["acme"] != names["globex"] != names["initech"] != names["acme"]
    assert len(set().union(*names.values())) >= 6


def test_refunds_in_incident_far_above_normal(default_events):
    events = default_events["acme"]
    incidents = planted_incidents("acme", events)
    flagged = {i for inc in incidents for i in inc.event_indices}
    normal = [e["action_details"]["amount"] for i, e in enumerate(events)
              if e["event_type"] == "payment.refunded" and i not in flagged]
    planted = [e["action_details"]["amount"] for i, e in enumerate(events)
               if e["event_type"] == "payment.refunded" and i in flagged]
    assert normal and planted
    assert min(planted) > 2 * max(normal)
    assert len({events[i]["action_details"]["customer_id"] for i in flagged
                if events[i]["event_type"] == "payment.refunded"}) == 1


@pytest.mark.parametrize("slug", SLUGS)
def test_incidents_found_for_other_arguments(slug):
    events = generate_events(slug, days=3, events_per_day=40, end=END, seed=123)
    incidents = planted_incidents(slug, events)
    assert len(incidents) >= 3
    assert all(0 <= i < len(events) for inc in incidents for i in inc.event_indices)


def test_incidents_are_tenant_specific(default_events):
    assert planted_incidents("acme", default_events["globex"]) == []
    assert planted_incidents("acme", []) == []


def test_incidents_found_after_json_round_trip(default_events):
    events = json.loads(json.dumps(default_events["initech"]))
    assert planted_incidents("initech", events) == planted_incidents(
        "initech", default_events["initech"]
    )


def test_unknown_tenant_and_bad_arguments():
    with pytest.raises(ValueError):
        generate_events("umbrella", end=END)
    with pytest.raises(ValueError):
        planted_incidents("umbrella", [])
    with pytest.raises(ValueError):
        generate_events("acme", days=0, end=END)


def test_default_volume_is_fast():
    started = time.perf_counter()
    total = sum(len(generate_events(slug, end=END)) for slug in SLUGS)
    elapsed = time.perf_counter() - started
    assert total > 0
    assert elapsed < 2.0, f"{elapsed:.2f}s"
