"""Hour-of-day and day-of-week features, and the distance from an actor's usual hours, read
the tenant's wall clock (its ``timezone`` setting), across daylight-saving changes too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.types import Event
from trailseal_plugins.anomaly.explain import _clock
from trailseal_plugins.anomaly.features import (
    DAY_COS,
    DAY_SIN,
    HOUR_COS,
    HOUR_SIN,
    INDEX,
    Profile,
    featurize,
    local_seconds,
)

EXAMPLES = settings(max_examples=100, deadline=None)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/St_Johns", "Pacific/Chatham")


def _event(seq: int, when: datetime, actor: str = "ana@x") -> Event:
    return Event(id=f"e{seq}", tenant_id="t", seq=seq, occurred_at=when.isoformat(),
                 event_type="invoice.viewed", actor_id=actor, actor_type="user",
                 actor_role=None, actor_department=None, entity_type="invoice",
                 entity_id=f"i{seq}", severity="info", source=None, tags=(),
                 ip_address=None, user_agent=None, action_details=None)


@EXAMPLES
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1),
                    timezones=st.just(UTC)),
       st.sampled_from(ZONES))
def test_hour_and_weekday_are_the_tenants_wall_clock(when, zone):
    local = when.astimezone(ZoneInfo(zone))
    seconds = local_seconds(when.timestamp(), zone)
    assert seconds == pytest.approx(when.timestamp() + local.utcoffset().total_seconds())
    x = Profile(zone).features(_event(1, when))
    assert x[INDEX["hour_sin"]] == HOUR_SIN[local.hour]
    assert x[INDEX["hour_cos"]] == HOUR_COS[local.hour]
    assert x[INDEX["weekday_sin"]] == DAY_SIN[local.weekday()]
    assert x[INDEX["weekday_cos"]] == DAY_COS[local.weekday()]


def _workdays_at_nine(zone: str, first: datetime, days: int) -> list[datetime]:
    """09:15 on the tenant's wall clock on each weekday, as UTC instants."""
    tz = ZoneInfo(zone)
    out = []
    for d in range(days):
        day = first + timedelta(days=d)
        if day.weekday() < 5:
            out.append(datetime(day.year, day.month, day.day, 9, 15, tzinfo=tz).astimezone(UTC))
    return out


@pytest.mark.parametrize(("zone", "first"), [
    ("Europe/Berlin", datetime(2026, 10, 5)),      # summer time ends on 25 October
    ("America/New_York", datetime(2026, 2, 23)),   # daylight time begins on 8 March
])
def test_usual_hours_survive_a_daylight_saving_change(zone, first):
    times = _workdays_at_nine(zone, first, 42)
    offsets = {t.astimezone(ZoneInfo(zone)).utcoffset() for t in times}
    assert len(offsets) == 2, "the weeks span a change of the zone's UTC offset"
    events = [_event(i + 1, t) for i, t in enumerate(times)]
    local, _ = featurize(events, Profile(zone))
    utc, _ = featurize(events, Profile())
    nine = (HOUR_SIN[9], HOUR_COS[9])
    # on the tenant's clock every event is at nine and always within the usual hours
    assert all((r[INDEX["hour_sin"]], r[INDEX["hour_cos"]]) == nine for r in local)
    assert not local[:, INDEX["hours_from_usual"]].any()
    # read in UTC the same working day moves by an hour at the change, and the first days
    # after it are an hour away from the usual hours
    hours = {int(t.hour) for t in times}
    assert len(hours) == 2
    changed = next(i for i, t in enumerate(times) if t.hour != times[0].hour)
    assert utc[changed, INDEX["hours_from_usual"]] == 1
    assert local[changed, INDEX["hours_from_usual"]] == 0


def test_unknown_zone_reads_as_utc_and_clock_names_the_zone():
    when = datetime(2026, 7, 1, 1, 30, tzinfo=UTC)
    assert local_seconds(when.timestamp(), "Nowhere/Atlantis") == when.timestamp()
    e = _event(1, when)
    assert _clock(e) == "01:30 UTC"
    assert _clock(e, "Europe/Berlin") == "03:30 CEST"
    assert _clock(e, "America/New_York") == "21:30 EDT"


def test_a_change_of_zone_keeps_the_profile_and_reads_new_events_in_the_new_zone():
    profile = Profile("UTC")
    when = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)
    featurize([_event(1, when)], profile)
    blob = profile.to_bytes()
    again = Profile.from_bytes(blob)
    again.zone = "Asia/Tokyo"
    x = again.features(_event(2, when + timedelta(minutes=5)))
    assert x[INDEX["hour_sin"]] == HOUR_SIN[8] and x[INDEX["weekday_sin"]] == DAY_SIN[1]
    # the stored profile itself is zone-free: loaded again it reads UTC until told otherwise
    y = Profile.from_bytes(blob).features(_event(2, when + timedelta(minutes=5)))
    assert y[INDEX["hour_sin"]] == HOUR_SIN[23] and y[INDEX["weekday_sin"]] == DAY_SIN[0]
