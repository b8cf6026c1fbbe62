"""When scheduled reports run: cron expressions read in a schedule's own time zone.

A slot is a wall-clock minute of the schedule's zone that matches its five-field cron
expression (croniter's reading: when both day-of-month and day-of-week are restricted,
either matches). ``next_slot(cron, zone, after)`` is the earliest instant strictly after
``after`` whose local wall time is a slot, so a daily ``0 9 * * *`` in Europe/Berlin is
09:00 local on both sides of a daylight-saving change (08:00 UTC in summer, 07:00 UTC in
winter... reversed as the offsets say). Two rules make wall time unambiguous:

- a wall time that occurs twice (clocks go back) runs once, at its first occurrence;
- a wall time that does not exist that day (clocks go forward) is skipped that day.

Nothing here touches the database: the functions are pure, so "now" is whatever the caller
passes (the scheduler's clock is injectable and the property tests run without waiting).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

#: Schedules may not run more often than this (minutes between two slots).
MIN_INTERVAL_MINUTES = 15
ZONE_MAX = 64

ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_FIELD = re.compile(r"^[0-9A-Za-z*/,\-#L?]+$")
_MAX_STEPS = 100_000  # croniter steps one search may take (a safety net, never reached)


class ScheduleInvalid(ValueError):
    """A cron expression or time zone that cannot be used; the message says why and
    ``field`` which (``cron`` or ``timezone``)."""

    def __init__(self, message: str, field: str = "cron"):
        super().__init__(message)
        self.field = field


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``); ``ScheduleInvalid`` naming
    the problem otherwise."""
    if not isinstance(name, str) or not 1 <= len(name) <= ZONE_MAX:
        raise ScheduleInvalid(f"timezone must be an IANA time zone name of 1–{ZONE_MAX} "
                              "characters, e.g. Europe/Berlin", "timezone")
    if name not in _zones():
        raise ScheduleInvalid(f"unknown time zone {name!r}: give an IANA name such as "
                              "Europe/Berlin, America/New_York or UTC", "timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # listed but unreadable
        raise ScheduleInvalid(f"time zone {name!r} cannot be loaded: {exc}",
                              "timezone") from None


def normalise_cron(expr: str) -> str:
    """The five fields of ``expr`` separated by single spaces (``@daily`` and the other
    aliases become their five fields); ``ScheduleInvalid`` naming the problem otherwise."""
    if not isinstance(expr, str) or not expr.strip() or len(expr) > 200:
        raise ScheduleInvalid("cron must be a cron expression of 1–200 characters, e.g. "
                              "'0 9 * * 1' (Mondays at 09:00)")
    if re.search(r"[^\x20-\x7e\t]", expr):
        raise ScheduleInvalid("cron must be one line of printable ASCII (fields separated "
                              "by spaces)")
    text = ALIASES.get(expr.strip().lower(), expr)
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleInvalid(f"cron must have 5 fields (minute hour day-of-month month "
                              f"day-of-week), got {len(fields)}: {expr[:60]!r}")
    if not all(_FIELD.fullmatch(f) for f in fields):
        raise ScheduleInvalid(f"cron {expr[:60]!r} holds a character cron does not use")
    text = " ".join(fields)
    try:
        croniter(text, datetime(2026, 1, 1))
    except Exception as exc:  # croniter raises several types for bad fields  # noqa: BLE001
        raise ScheduleInvalid(f"invalid cron {expr[:60]!r}: {exc}") from None
    return text


def min_interval_minutes(cron: str) -> int:
    """The shortest time between two slots of ``cron`` on the wall clock, in minutes (from
    its minute and hour fields; a zone's clock changes aside)."""
    minutes, hours = croniter(cron, datetime(2026, 1, 1)).expanded[:2]
    minutes = sorted(int(m) for m in (range(60) if minutes == ["*"] else minutes))
    hours = sorted(int(h) for h in (range(24) if hours == ["*"] else hours))
    gaps = [b - a for a, b in zip(minutes, minutes[1:], strict=False)]
    # from the last minute of an hour to the first of the next, when both hours run
    hour_set = set(hours)
    if any((h + 1) % 24 in hour_set for h in hours):
        gaps.append(60 - minutes[-1] + minutes[0])
    return min(gaps) if gaps else 24 * 60


def check_schedule(cron: str, zone_name: str, *, now: datetime | None = None) -> tuple[str, ZoneInfo]:
    """``(normalised cron, zone)`` of a schedule that may be stored: a valid five-field
    cron no more frequent than every ``MIN_INTERVAL_MINUTES`` minutes that has a slot, in
    an IANA zone. ``ScheduleInvalid`` with the reason otherwise."""
    text = normalise_cron(cron)
    zone = parse_zone(zone_name)
    interval = min_interval_minutes(text)
    if interval < MIN_INTERVAL_MINUTES:
        raise ScheduleInvalid(f"cron {text!r} runs every {interval} minute(s); reports may "
                              f"run at most every {MIN_INTERVAL_MINUTES} minutes")
    next_slot(text, zone, now or datetime.now(UTC))  # raises for a date that never comes
    return text, zone


def _exists(naive: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant (UTC) whose wall time in ``zone`` is ``naive``; None when the wall
    time does not exist there (skipped by a clock change)."""
    instant = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    back = instant.astimezone(zone).replace(tzinfo=None)
    return instant if back == naive else None


def next_slot(cron: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The earliest instant (UTC, whole minute) strictly after ``after`` whose wall time in
    ``zone`` matches ``cron``: a wall time that occurs twice counts once (its first
    occurrence), one that does not exist that day is skipped. ``ScheduleInvalid`` when the
    expression has no such time (``0 0 30 2 *``)."""
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    after = after.astimezone(UTC)
    # Wall times after ``after``'s own are the candidates, in order; the first occurrence of
    # a wall time increases with the wall time, so the first candidate that exists and
    # lies after ``after`` (not in a repeated hour already passed) is the earliest.
    local = after.astimezone(zone).replace(tzinfo=None)
    try:
        it = croniter(cron, local)
        for _ in range(_MAX_STEPS):
            candidate = it.get_next(datetime)
            instant = _exists(candidate, zone)
            if instant is not None and instant > after:
                return instant
    except ScheduleInvalid:
        raise
    except Exception as exc:  # croniter's "no such date" (CroniterBadDateError)  # noqa: BLE001
        raise ScheduleInvalid(f"cron {cron!r} never runs: {exc}") from None
    raise ScheduleInvalid(f"cron {cron!r} has no slot in reach")


def previous_slot(cron: str, zone: ZoneInfo, before: datetime) -> datetime:
    """The latest slot strictly before ``before`` (UTC): where the first report of a new
    schedule starts, so it covers one period."""
    before = before.astimezone(UTC)
    local = before.astimezone(zone).replace(tzinfo=None)
    try:
        it = croniter(cron, local)
        for _ in range(_MAX_STEPS):
            candidate = it.get_prev(datetime)
            instant = _exists(candidate, zone)
            if instant is not None and instant < before:
                return instant
    except Exception:  # noqa: BLE001 - no earlier slot: one day back
        pass
    return before - timedelta(days=1)
