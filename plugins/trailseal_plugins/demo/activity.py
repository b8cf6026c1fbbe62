"""The everyday activity of a tenant (a working-week rhythm in its time zone, background
jobs around the clock) and :func:`generate_events`, which mixes the incidents in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

from .builders import BUILDERS, Ctx
from .cast import build_cast
from .events import Raw, make_event, random_request_id
from .incidents import plant
from .profiles import Profile, stable_hash, tenant_profile

_COMMON = (("customer.viewed", 6), ("report.viewed", 3), ("export.downloaded", 0.6),
           ("settings.changed", 0.4), ("user.password_changed", 0.1))
_BY_DEPT: dict[str, tuple[tuple[str, float], ...]] = {
    "sales": (("customer.updated", 6), ("customer.created", 2), ("opportunity.updated", 8),
              ("invoice.sent", 0.5)),
    "support": (("ticket.updated", 10), ("ticket.closed", 4), ("customer.updated", 4),
                ("payment.refunded", 0.8), ("user.password_reset", 0.6)),
    "engineering": (("api_key.created", 0.4), ("api_key.revoked", 0.3), ("webhook.updated", 1.5),
                    ("integration.updated", 1.5), ("deployment.created", 3)),
    "finance": (("invoice.created", 6), ("invoice.updated", 5), ("invoice.sent", 4),
                ("invoice.deleted", 0.25), ("payment.refunded", 1.2), ("customer.updated", 1.5)),
    "security": (("role.granted", 1), ("role.revoked", 0.6), ("alert.acknowledged", 4),
                 ("mfa.reset", 0.4), ("settings.changed", 1), ("export.downloaded", 1)),
    "hr": (("user.invited", 2), ("user.deactivated", 1), ("user.updated", 4),
           ("role.granted", 0.6)),
}
_CATALOG = {
    dept: (
        [t for t, _ in _COMMON + extra],
        list(itertools.accumulate(w for _, w in _COMMON + extra)),
    )
    for dept, extra in _BY_DEPT.items()
}


def _slot_weights(
    profile: Profile, start: datetime, hours: int
) -> tuple[list[float], list[float]]:
    """Cumulative weights of each hour of the window for people and for background jobs."""
    tz = ZoneInfo(profile.tz)
    human: list[float] = []
    service: list[float] = []
    for k in range(hours):
        local = (start + timedelta(hours=k)).astimezone(tz)
        h, weekend = local.hour, local.weekday() >= 5
        if 9 <= h < 17:
            w = 0.75 if h == 12 else 1.0
        elif h in (8, 17):
            w = 0.55
        elif h in (7, 18, 19):
            w = 0.18
        elif 20 <= h <= 22:
            w = 0.05
        else:
            w = 0.008
        human.append(w * (0.07 if weekend else 1.0))
        s = 2.5 if 1 <= h < 4 else (1.0 if 7 <= h < 20 else 0.45)
        service.append(s * (0.6 if weekend else 1.0))
    return list(itertools.accumulate(human)), list(itertools.accumulate(service))


def _baseline(
    ctx: Ctx, start: datetime, end: datetime, human_target: int, service_target: int,
) -> list[Raw]:
    rng, cast = ctx.rng, ctx.cast
    hours = max(1, int((end - start).total_seconds() // 3600))
    human_cum, service_cum = _slot_weights(cast.profile, start, hours)
    slots = range(hours)
    out: list[Raw] = []

    # Background jobs and integrations.
    for k in rng.choices(slots, cum_weights=service_cum, k=service_target):
        moment = start + timedelta(hours=k, seconds=rng.random() * 3600)
        if moment >= end:
            continue
        svc = rng.choices(cast.services, cum_weights=cast.service_cum)[0]
        types, weights = zip(*svc.events, strict=True)
        event_type = rng.choices(types, weights=weights)[0]
        built = BUILDERS[event_type](ctx, None)
        out.append(make_event(moment, event_type, svc.actor, built, svc.source, svc.ip,
                              svc.user_agent, random_request_id(rng)))

    # People work in sessions: sign in, do a handful of things, sometimes sign out.
    produced = 0
    guard = human_target * 4 + 10
    while produced < human_target and guard > 0:
        guard -= 1
        k = rng.choices(slots, cum_weights=human_cum)[0]
        moment = start + timedelta(hours=k, seconds=rng.random() * 3600)
        who = rng.choices(cast.people, cum_weights=cast.people_cum)[0]
        ip, ua, source = rng.choices(who.devices, cum_weights=who.device_cum)[0]
        actor = who.actor()
        types, cum = _CATALOG[who.department]
        plan = []
        if rng.random() < 0.05:
            plan.append("user.login_failed")
        plan.append("user.login")
        plan.extend(rng.choices(types, cum_weights=cum, k=min(1 + int(rng.expovariate(0.22)), 30)))
        if rng.random() < 0.35:
            plan.append("user.logout")
        for event_type in plan:
            if moment >= end or produced >= human_target:
                break
            built = BUILDERS[event_type](ctx, who)
            out.append(make_event(moment, event_type, actor, built, source, ip, ua,
                                  random_request_id(rng)))
            produced += 1
            moment += timedelta(seconds=rng.uniform(8, 420))
    return out


def generate_events(
    tenant_slug: str,
    *,
    days: int = 28,
    events_per_day: int = 150,
    end: datetime | None = None,
    seed: int = 7,
) -> list[dict]:
    """Weeks of audit events for one tenant, sorted by ``occurred_at`` (oldest first).

    Events fall in ``[end - days, end)``; ``end`` defaults to the current UTC time truncated to
    the minute (a naive ``end`` is taken as UTC). About ``days * events_per_day`` events are
    produced, including the tenant's planted incidents (see :func:`planted_incidents`). The
    output is a pure function of the arguments; each event is a fresh dict that passes
    :class:`trailseal.schemas.EventIn` validation.
    """
    profile = tenant_profile(tenant_slug)
    if days < 1:
        raise ValueError("days must be at least 1")
    if events_per_day < 0:
        raise ValueError("events_per_day must not be negative")
    if end is None:
        end = datetime.now(UTC).replace(second=0, microsecond=0)
    elif end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    else:
        end = end.astimezone(UTC)
    start = end - timedelta(days=days)

    ctx = Ctx(rng=Random(seed + stable_hash(profile.slug)), cast=build_cast(profile))
    planted = plant(ctx, start, end, days)
    remaining = max(0, days * events_per_day - len(planted))
    service_target = round(remaining * 0.12)
    raw = _baseline(ctx, start, end, remaining - service_target, service_target) + planted
    raw.sort(key=lambda item: item[0])
    return [event for _, event in raw]
