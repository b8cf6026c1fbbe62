"""The kinds of planted incident, where in the window each one lands, and
:func:`planted_incidents`, which finds them again among the generated events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .builders import Ctx
from .events import Raw, marker
from .planters import play_incident
from .profiles import PlantedIncident, tenant_profile


@dataclass(frozen=True)
class _Kind:
    name: str
    when: str  # "night", "weekend-night" or "workday"
    hour: int  # local start hour
    span: timedelta  # upper bound of the incident's duration
    describe: str  # sentence template: {actor}, {n}, {when}


_KINDS: dict[str, _Kind] = {
    "invoice_purge": _Kind(
        "off-hours bulk invoice deletion", "weekend-night", 2, timedelta(hours=1),
        "{actor} signed in from an address never seen before and deleted {n} invoices, "
        "paid ones included, within minutes, starting {when}."),
    "login_burst_mfa_off": _Kind(
        "failed-login burst, then MFA disabled", "night", 3, timedelta(hours=1),
        "A burst of failed sign-ins against {actor} from foreign addresses ended in a "
        "successful sign-in, after which MFA was switched off and an API key created "
        "({n} events starting {when})."),
    "refund_abuse": _Kind(
        "oversized refunds to one customer", "workday", 16, timedelta(hours=2),
        "{actor} changed one customer's refund account and then issued refunds to that "
        "customer many times larger than usual ({n} events starting {when})."),
    "self_escalation_export": _Kind(
        "self-granted admin followed by bulk export", "night", 21, timedelta(hours=1),
        "{actor} granted themselves the admin role, downloaded complete customer, payment "
        "and invoice exports, then removed the role again ({n} events starting {when})."),
    "api_key_night_burst": _Kind(
        "API key mass-creating records at night", "night", 1, timedelta(hours=1),
        "The API key {actor} created {n} records in minutes from an unfamiliar address, "
        "far outside its usual hours and rate, starting {when}."),
    "impossible_travel": _Kind(
        "impossible travel, then payout details changed", "workday", 10, timedelta(hours=2),
        "{actor} signed in from another continent minutes after an office sign-in and "
        "immediately changed payout bank details ({n} events starting {when})."),
    "controls_weakened": _Kind(
        "security controls switched off after hours", "night", 23, timedelta(hours=1),
        "{actor} switched off SSO and MFA enforcement, cut audit retention and removed the "
        "IP allow-list and SIEM webhook late at night ({n} events starting {when})."),
    "departure_exfiltration": _Kind(
        "mass export before departure", "weekend-night", 20, timedelta(hours=2),
        "{actor} downloaded large exports of customers, contacts and pipeline in one "
        "evening and shared a report to a personal address ({n} events starting {when})."),
    "dormant_admin_backdoor": _Kind(
        "dormant admin creates a backdoor account", "night", 2, timedelta(hours=1),
        "The long-idle admin account {actor} signed in from a new address, invited an "
        "outside account, made it admin and an API key was created for it "
        "({n} events starting {when})."),
}


def _local_day(tz: ZoneInfo, start: datetime, day: int) -> date:
    return (start + timedelta(days=day, hours=12)).astimezone(tz).date()


def plant(ctx: Ctx, start: datetime, end: datetime, days: int) -> list[Raw]:
    """Place each of the tenant's incidents on its own day (when the window allows)."""
    profile, rng = ctx.cast.profile, ctx.rng
    tz = ZoneInfo(profile.tz)
    interior = list(range(1, days - 1)) if days >= 4 else list(range(days))
    used: set[int] = set()
    out: list[Raw] = []
    for kind_name in profile.incidents:
        kind = _KINDS[kind_name]
        free = [d for d in interior if d not in used] or interior
        if kind.when == "workday":
            free = [d for d in free if _local_day(tz, start, d).weekday() < 5] or free
        elif kind.when == "weekend-night":
            free = [d for d in free if _local_day(tz, start, d).weekday() >= 5] or free
        day = rng.choice(free)
        used.add(day)
        local = datetime.combine(_local_day(tz, start, day),
                                 time(kind.hour, rng.randint(0, 50), rng.randint(0, 59)),
                                 tzinfo=tz)
        t0 = local.astimezone(UTC)
        while t0 + kind.span > end:
            t0 -= timedelta(days=1)
        while t0 < start:
            t0 += timedelta(days=1)
        t0 = max(start, min(t0, end - kind.span))
        out.extend(play_incident(ctx, kind_name, t0))
    return out


def planted_incidents(tenant_slug: str, events: list[dict]) -> list[PlantedIncident]:
    """The incidents hidden in ``events`` (as returned by :func:`generate_events`).

    Incident events are recognised by their ``action_details.request_id``, which is derived
    from the event itself, so the indices returned point into ``events`` whatever arguments
    produced it. Incidents with no event in ``events`` are left out.
    """
    profile = tenant_profile(tenant_slug)
    tz = ZoneInfo(profile.tz)
    found: dict[str, list[int]] = {kind: [] for kind in profile.incidents}
    for index, event in enumerate(events):
        details = event.get("action_details") or {}
        request_id = details.get("request_id")
        if not isinstance(request_id, str):
            continue
        for kind in profile.incidents:
            if request_id == marker(profile.slug, kind, event):
                found[kind].append(index)
                break
    incidents = []
    for kind_name, indices in found.items():
        if not indices:
            continue
        kind = _KINDS[kind_name]
        first = events[indices[0]]
        moment = datetime.fromisoformat(first["occurred_at"].replace("Z", "+00:00"))
        when = moment.astimezone(tz).strftime("%a %d %b %Y %H:%M") + " local time"
        description = kind.describe.format(actor=first["actor"]["id"], n=len(indices), when=when)
        incidents.append(PlantedIncident(profile.slug, kind.name, description, indices))
    return incidents
