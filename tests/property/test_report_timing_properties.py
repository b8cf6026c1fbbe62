"""When scheduled reports run: for random IANA zones, instants and cron expressions, the next
slot is in the future, its wall time in the zone matches the cron expression (at its first
occurrence), and no earlier instant does (checked minute by minute against an independent
reading of the expression). Plus the named daylight-saving cases of Europe/Berlin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailseal.services.report_timing import (
    MIN_INTERVAL_MINUTES,
    ScheduleInvalid,
    check_schedule,
    min_interval_minutes,
    next_slot,
    previous_slot,
)

ZONES = sorted(available_timezones())
BERLIN = ZoneInfo("Europe/Berlin")


def _field(values: list[int]) -> str:
    return ",".join(str(v) for v in sorted(set(values)))


@st.composite
def crons(draw) -> str:
    """Five-field expressions with at least one slot a week: minutes 15+ apart, some hours
    (or every hour), any day of the month, some weekdays (or every day)."""
    first = draw(st.integers(0, 14))
    minutes = [m for m in range(first, 60, draw(st.sampled_from([15, 20, 30, 60])))]
    minutes = draw(st.lists(st.sampled_from(minutes), min_size=1, unique=True))
    hours = draw(st.one_of(st.just("*"), st.lists(st.integers(0, 23), min_size=1,
                                                  max_size=4).map(_field)))
    days = draw(st.one_of(st.just("*"), st.lists(st.integers(0, 6), min_size=1,
                                                 max_size=3).map(_field)))
    return f"{_field(minutes)} {hours} * * {days}"


def _matcher(cron: str):
    """An independent reading of ``cron`` (every day of the month and month): a function of
    a local wall time."""
    minutes, hours, _, _, days = croniter(cron, datetime(2026, 1, 1)).expanded

    def expand(values, full):
        return set(full) if values == ["*"] else {int(v) % 7 if full == range(7) else int(v)
                                                   for v in values}

    minutes, hours, days = (expand(minutes, range(60)), expand(hours, range(24)),
                            expand(days, range(7)))

    def matches(local: datetime) -> bool:
        # cron's Sunday is 0, Python's Monday is 0
        return (local.minute in minutes and local.hour in hours
                and (local.weekday() + 1) % 7 in days)

    return matches


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone_name=st.sampled_from(ZONES), cron=crons(),
       after=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 1),
                          timezones=st.just(UTC)))
def test_next_slot_is_the_earliest_future_match(zone_name, cron, after):
    zone = ZoneInfo(zone_name)
    slot = next_slot(cron, zone, after)
    matches = _matcher(cron)
    assert slot > after
    assert slot.second == 0 and slot.microsecond == 0
    local = slot.astimezone(zone)
    assert matches(local.replace(tzinfo=None)), (local, cron)
    assert local.fold == 0  # the first occurrence of a wall time that repeats
    # no whole minute between ``after`` and the slot is one
    minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < slot:
        earlier = minute.astimezone(zone)
        assert not (matches(earlier.replace(tzinfo=None)) and earlier.fold == 0), (
            earlier, slot, cron)
        minute += timedelta(minutes=1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone_name=st.sampled_from(ZONES), cron=crons(),
       after=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 1),
                          timezones=st.just(UTC)))
def test_previous_slot_is_the_slot_before(zone_name, cron, after):
    zone = ZoneInfo(zone_name)
    slot = next_slot(cron, zone, after)
    before = previous_slot(cron, zone, slot)
    assert before < slot
    assert next_slot(cron, zone, before) == slot  # nothing in between


@pytest.mark.parametrize("after,expected", [
    # spring: clocks go forward on Sunday 2026-03-29 (02:00 CET -> 03:00 CEST)
    (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
    (datetime(2026, 3, 29, 7, 0, tzinfo=UTC), datetime(2026, 3, 30, 7, 0, tzinfo=UTC)),
    (datetime(2026, 3, 27, 8, 0, tzinfo=UTC), datetime(2026, 3, 28, 8, 0, tzinfo=UTC)),
    # autumn: clocks go back on Sunday 2026-10-25 (03:00 CEST -> 02:00 CET)
    (datetime(2026, 10, 24, 7, 0, tzinfo=UTC), datetime(2026, 10, 25, 8, 0, tzinfo=UTC)),
    (datetime(2026, 10, 25, 8, 0, tzinfo=UTC), datetime(2026, 10, 26, 8, 0, tzinfo=UTC)),
])
def test_daily_nine_in_berlin_is_nine_local_across_the_changes(after, expected):
    slot = next_slot("0 9 * * *", BERLIN, after)
    assert slot == expected
    assert (slot.astimezone(BERLIN).hour, slot.astimezone(BERLIN).minute) == (9, 0)


def test_wall_times_the_clock_skips_or_repeats():
    # 02:30 does not exist on 2026-03-29 in Berlin: that day is skipped
    assert next_slot("30 2 * * *", BERLIN, datetime(2026, 3, 28, 12, 0, tzinfo=UTC)) == \
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    # 02:30 happens twice on 2026-10-25: it runs once, at the first (00:30 UTC, CEST)
    first = next_slot("30 2 * * *", BERLIN, datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert next_slot("30 2 * * *", BERLIN, first) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize("cron,interval", [
    ("*/15 * * * *", 15), ("0,20,40 * * * *", 20), ("50 * * * *", 60), ("0 9 * * *", 1440),
    ("45 9,10 * * *", 60), ("0,45 9 * * *", 45), ("55 8 * * *", 1440), ("0,59 * * * *", 1),
])
def test_min_interval(cron, interval):
    assert min_interval_minutes(cron) == interval
    if interval < MIN_INTERVAL_MINUTES:
        with pytest.raises(ScheduleInvalid, match="at most every 15 minutes"):
            check_schedule(cron, "UTC")
    else:
        assert check_schedule(cron, "UTC")[0] == cron
