"""Summary windows are exact local calendar periods in any time zone, across daylight-saving
changes (including 30-minute ones and changes at midnight); a summary counts exactly the
tenant's events inside its window and cites only them."""

from __future__ import annotations

import re
from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_event
from tests.property.strategies import PROPERTY
from trailseal.services.summaries import PERIODS, last_complete_day, previous_window, window_of
from trailseal.testing import make_tenant

#: Zones with every kind of rule: 1 h changes both ways, 30 min (Lord Howe), +5:30 with no
#: change (Kolkata), +12:45/+13:45 (Chatham), changes at midnight (Santiago, Havana), the
#: southern hemisphere, no change at all.
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "America/Santiago", "America/Havana", "Europe/London",
         "Australia/Adelaide", "Asia/Kathmandu", "UTC", "America/St_Johns"]
#: Zones whose clocks never skip or repeat midnight: there the window starts at 00:00 sharp.
MIDNIGHT_EXISTS = {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                   "Pacific/Chatham", "Europe/London", "Australia/Adelaide", "Asia/Kathmandu",
                   "UTC", "America/St_Johns"}
TICK = timedelta(microseconds=1)
CITED = re.compile(r"\[([0-9a-f-]{36})\]")

days = st.dates(min_value=date(1990, 1, 1), max_value=date(2037, 12, 31))


@PROPERTY
@given(zone_name=st.sampled_from(ZONES), day=days, period=st.sampled_from(PERIODS))
def test_windows_start_at_local_midnight_and_tile_without_gaps(zone_name, day, period):
    zone = ZoneInfo(zone_name)
    w = window_of(period, day, zone)
    assert w.first_day <= day < w.next_day
    # the start is the first instant of the first local day: the instant before it is an
    # earlier day, the start itself that day (midnight sharp where midnight exists)
    local_start = w.start.astimezone(zone)
    assert local_start.date() == w.first_day
    assert (w.start - TICK).astimezone(zone).date() < w.first_day
    if zone_name in MIDNIGHT_EXISTS:
        assert local_start.time().isoformat() == "00:00:00"
    # the end is the next period's start; the previous period ends at this start
    following = window_of(period, w.next_day, zone)
    assert w.end == following.start and following.first_day == w.next_day
    assert previous_window(w).end == w.start
    # an instant at the start is inside, at the end outside (half-open windows)
    assert w.start <= w.start < w.end and not w.end < w.end
    assert window_of(period, (w.end - TICK).astimezone(zone).date(), zone) == w
    assert window_of(period, w.end.astimezone(zone).date(), zone) == following
    # lengths: a day is 24 h give or take the zone's change (at most an hour here)
    hours = (w.end - w.start).total_seconds() / 3600
    if period == "daily":
        assert 23 <= hours <= 25
    elif period == "weekly":
        assert 167 <= hours <= 169 and w.first_day.weekday() == 0
    else:
        assert w.first_day.day == 1 and (w.next_day - w.first_day).days in (28, 29, 30, 31)
    # the default period is the last one that is over
    now = w.end + timedelta(seconds=1)
    assert window_of(period, last_complete_day(period, now, zone), zone) == w


WINDOW_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                "Pacific/Chatham"]
# days around this zone's changes in 2026: Berlin 03-29 and 10-25, New York 03-08 and 11-01,
# Lord Howe 04-05 and 10-04, Chatham 04-05 and 09-27 (Kolkata has none)
TRANSITION_DAYS = [date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8), date(2026, 11, 1),
                   date(2026, 4, 5), date(2026, 10, 4), date(2026, 9, 27), date(2026, 6, 15)]


@st.composite
def trails(draw):
    """A zone, a period, a day near a daylight-saving change and events around its window,
    some exactly at its start and end (and a tick either side)."""
    zone = ZoneInfo(draw(st.sampled_from(WINDOW_ZONES)))
    period = draw(st.sampled_from(["daily", "daily", "weekly"]))
    day = draw(st.sampled_from(TRANSITION_DAYS)) + timedelta(days=draw(st.integers(-1, 1)))
    w = window_of(period, day, zone)
    span = int((w.end - w.start).total_seconds() // 60)
    moments = draw(st.lists(st.integers(-36 * 60, span + 36 * 60), max_size=12))
    instants = [w.start + timedelta(minutes=m) for m in moments]
    instants += draw(st.lists(st.sampled_from([w.start, w.end, w.start - TICK, w.end - TICK]),
                              max_size=4))
    return zone, period, day, w, instants


@PROPERTY
@given(trail=trails())
def test_summary_counts_exactly_the_window_and_cites_only_it(trailseal_app, trailseal_services,
                                                             trail):
    zone, period, day, w, instants = trail
    client = trailseal_app.test_client()
    me = make_tenant(trailseal_services)
    assert client.put("/api/v1/settings", json={"timezone": zone.key},
                      headers=me.headers).status_code == 200
    ids: list[str] = []
    if instants:
        batch = [make_event(occurred_at=t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                            severity=["info", "high", "critical"][n % 3],
                            actor={"id": f"a{n % 4}", "type": "user"})
                 for n, t in enumerate(instants)]
        resp = client.post("/api/v1/events/batch", json={"events": batch}, headers=me.headers)
        assert resp.status_code == 201
        ids = resp.get_json()["ids"]
    resp = client.get(f"/api/v1/summary/{period}?date={day.isoformat()}", headers=me.headers)
    assert resp.status_code == 200, resp.get_json()
    summary = resp.get_json()
    inside = {eid for eid, t in zip(ids, instants, strict=True)
              if t.astimezone(zone).date() >= w.first_day
              and t.astimezone(zone).date() < w.next_day}
    assert summary["window"]["start"] == w.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert summary["totals"]["events"] == len(inside)
    assert sum(summary["totals"]["by_severity"].values()) == len(inside)
    prev = previous_window(w)
    assert summary["previous"]["events"] == sum(prev.start <= t < prev.end for t in instants)
    cited = set(CITED.findall(summary["narrative"]))
    assert cited <= inside
    assert {s["id"] for s in summary["sources"]} == cited
    if inside:
        assert cited  # the totals line cites the window's first and last events
