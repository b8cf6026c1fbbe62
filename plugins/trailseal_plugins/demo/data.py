"""A realistic, reproducible data set of audit events for three fictional SaaS tenants.

Each tenant gets a fixed cast of people (with stable roles, departments, IP addresses and
browsers) plus a few service accounts, and weeks of activity that follows a working-week
rhythm in the tenant's time zone: busy on weekday business hours, quiet at night and at
weekends, with background jobs running around the clock.

A few security incidents are mixed into every tenant (bulk deletions at night from an unknown
address, a password-guessing burst ending with MFA switched off, a self-granted admin role
followed by large exports, ...). Their events look like any other event of the same kind, but
their ``request_id`` is derived from their content, so :func:`planted_incidents` can find
them again in the list returned by :func:`generate_events`.

Every event is a plain dict shaped exactly like the body of ``POST /api/v1/events``
(:class:`trailseal.schemas.EventIn`). Output depends only on the arguments: the module never
touches the global random generator and never uses Python's salted ``hash()``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from random import Random
from zoneinfo import ZoneInfo

from .builders import BUILDERS, Built, Ctx
from .cast import (
    DESKTOP_UAS,
    HEADLESS_UA,
    Cast,
    Person,
    build_cast,
)
from .events import Raw, make_event, marker, random_request_id
from .profiles import (
    DemoTenant,
    PlantedIncident,
    Profile,
    demo_tenants,
    stable_hash,
    tenant_profile,
)

__all__ = ["DemoTenant", "PlantedIncident", "demo_tenants", "generate_events", "planted_incidents"]


# --------------------------------------------------------------------------------------------
# Baseline event catalogue
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------


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

_ATTACKER_NETS = ("185.220.101", "45.155.205", "193.32.162", "89.248.165", "194.26.29")


class _Planter:
    """Builds one incident's events; every event's ``request_id`` is its marker."""

    def __init__(self, ctx: Ctx, kind: str, t0: datetime) -> None:
        self.ctx, self.rng, self.kind, self.t = ctx, ctx.rng, kind, t0
        self.out: list[Raw] = []

    def attacker_ip(self) -> str:
        return f"{self.rng.choice(_ATTACKER_NETS)}.{self.rng.randint(2, 250)}"

    def emit(self, gap: tuple[float, float], event_type: str, actor: dict[str, str],
             built: Built, source: str, ip: str, ua: str, *, marked: bool = True) -> None:
        """Append an event ``gap`` seconds (drawn from the range) after the previous one.

        ``marked=False`` gives ordinary context (e.g. the normal sign-in that precedes an
        anomaly): it gets a random request id and is not part of the incident.
        """
        self.t += timedelta(seconds=self.rng.uniform(*gap))
        moment, ev = make_event(self.t, event_type, actor, built, source, ip, ua, "")
        ev["action_details"]["request_id"] = (
            marker(self.ctx.cast.profile.slug, self.kind, ev) if marked
            else random_request_id(self.rng)
        )
        self.out.append((moment, ev))


def _pick(cast: Cast, rng: Random, department: str, role: str | None = None) -> Person:
    in_dept = [p for p in cast.people if p.department == department]
    pool = [p for p in in_dept if role is None or p.role == role] or in_dept or cast.people
    return rng.choice(pool)


def _i_invoice_purge(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = _pick(c.cast, rng, "finance")
    ip, ua = pl.attacker_ip(), DESKTOP_UAS[5]
    login = BUILDERS["user.login"](c, who)
    login[2].update(new_device=True, geo={"country": "NL", "city": "Amsterdam"})
    pl.emit((0, 60), "user.login", who.actor(), (login[0], "medium", login[2], login[3]),
            "web", ip, ua)
    for _ in range(rng.randint(24, 36)):
        entity, number = c.invoice()
        details = {"invoice_number": number, "amount": c.amount(8.2, 0.6),
                   "status": rng.choice(("paid", "paid", "open")), "customer_id": c.customer(),
                   "reason": "created_in_error"}
        pl.emit((6, 40), "invoice.deleted", who.actor(),
                (entity, "high", details, ["billing", "deletion"]), "web", ip, ua)
    logout = BUILDERS["user.logout"](c, who)
    pl.emit((20, 90), "user.logout", who.actor(), logout, "web", ip, ua)


def _i_login_burst(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = _pick(c.cast, rng, "support", "support_lead")
    ips = [pl.attacker_ip() for _ in range(3)]
    geo = {"country": "RU", "city": "Moscow"}
    attempts = rng.randint(22, 34)
    for n in range(1, attempts + 1):
        sev = "high" if n > 10 else "medium"
        pl.emit((2, 14), "user.login_failed", who.actor(),
                ({"type": "user", "id": who.id}, sev,
                 {"reason": "invalid_password", "attempt": n, "geo": geo},
                 ["auth", "failed-login"]), "web", rng.choice(ips), "python-requests/2.31.0")
    ip, ua = ips[0], HEADLESS_UA
    pl.emit((20, 90), "user.login", who.actor(),
            ({"type": "user", "id": who.id}, "high",
             {"method": "password", "mfa": "totp", "geo": geo, "new_device": True},
             ["auth"]), "web", ip, ua)
    pl.emit((30, 120), "mfa.disabled", who.actor(),
            ({"type": "user", "id": who.id}, "critical",
             {"factor": "totp", "disabled_by": who.id, "remaining_factors": 0},
             ["auth", "security"]), "web", ip, ua)
    pl.emit((40, 200), "api_key.created", who.actor(),
            ({"type": "api_key", "id": f"key_live_{rng.getrandbits(64):016x}"}, "high",
             {"name": "sync", "scopes": ["read:customers", "read:invoices", "write:orders"],
              "expires_in_days": None}, ["api-keys"]), "web", ip, ua)


def _i_refund_abuse(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = _pick(c.cast, rng, "support", "support_agent")
    ip, ua, source = who.devices[0]
    customer = c.customer()
    pl.emit((0, 60), "customer.updated", who.actor(),
            ({"type": "customer", "id": customer}, "high",
             {"changed_fields": ["refund_account"], "verified": False}, ["crm", "billing"]),
            source, ip, ua)
    for _ in range(rng.randint(7, 10)):
        amount = round(rng.uniform(4200, 9800), 2)
        pl.emit((120, 600), "payment.refunded", who.actor(),
                ({"type": "payment", "id": f"pay_{rng.getrandbits(48):012x}"}, "high",
                 {"amount": amount, "currency": c.cast.profile.currency,
                  "customer_id": customer, "reason": "service_issue", "approval": "none"},
                 ["billing", "refund"]), source, ip, ua)


def _i_self_escalation(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = _pick(c.cast, rng, "engineering", "developer")
    ip, ua, _ = who.devices[1]
    actor = who.actor()
    pl.emit((0, 60), "user.login", actor,
            ({"type": "user", "id": who.id}, "info",
             {"method": who.login_method, "mfa": "totp", "geo": dict(c.cast.geo)}, ["auth"]),
            "web", ip, ua)
    pl.emit((40, 200), "role.granted", actor,
            ({"type": "user", "id": who.id}, "critical",
             {"role": "admin", "granted_to": who.id, "previous_role": who.role,
              "ticket": None}, ["access", "privilege"]), "web", ip, ua)
    escalated = dict(actor, role="admin")
    for dataset, rows in (("customers", rng.randint(150_000, 260_000)),
                          ("payments", rng.randint(300_000, 520_000)),
                          ("invoices", rng.randint(200_000, 400_000))):
        pl.emit((60, 400), "export.downloaded", escalated,
                ({"type": "export", "id": f"exp_{rng.getrandbits(40):010x}"}, "high",
                 {"dataset": dataset, "rows": rows, "format": "csv", "size_kb": rows // 6,
                  "filters": None}, ["export", "pii"]), "web", ip, ua)
    pl.emit((60, 300), "role.revoked", escalated,
            ({"type": "user", "id": who.id}, "high",
             {"role": "admin", "revoked_from": who.id, "ticket": None}, ["access", "privilege"]),
            "web", ip, ua)


def _i_api_key_burst(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    key = next(s for s in c.cast.services if s.actor["type"] == "api_key")
    ip = pl.attacker_ip()
    burst = rng.randint(45, 60)
    for n in range(burst):
        built = BUILDERS["customer.created"](c, None)
        built[2]["import_batch"] = None
        sev = "medium" if n < 30 else "high"
        pl.emit((2, 12), "customer.created", key.actor, (built[0], sev, built[2], ["crm"]),
                "api", ip, "Go-http-client/1.1")
    pl.emit((1, 5), "rate_limit.exceeded", key.actor,
            ({"type": "api_key", "id": key.actor["id"]}, "high",
             {"limit_per_minute": 120, "observed_per_minute": rng.randint(260, 420)},
             ["api", "rate-limit"]), "api", ip, "Go-http-client/1.1")


def _i_impossible_travel(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = _pick(c.cast, rng, "finance", "finance_manager")
    actor = who.actor()
    ip = f"177.{rng.randint(32, 63)}.{rng.randint(0, 255)}.{rng.randint(2, 250)}"
    office_ip, office_ua, _ = who.devices[0]
    login = BUILDERS["user.login"](c, who)
    pl.emit((0, 60), "user.login", actor, login, "web", office_ip, office_ua, marked=False)
    minutes = rng.randint(14, 25)
    pl.emit((minutes * 60, minutes * 60 + 30), "user.login", actor,
            ({"type": "user", "id": who.id}, "high",
             {"method": "password", "mfa": "totp", "geo": {"country": "BR", "city": "Sao Paulo"},
              "previous_geo": dict(c.cast.geo), "minutes_since_previous": minutes,
              "distance_km": 9800}, ["auth", "geo-anomaly"]), "web", ip, DESKTOP_UAS[0])
    ua = DESKTOP_UAS[0]
    pl.emit((60, 240), "settings.changed", actor,
            ({"type": "settings", "id": "payouts"}, "critical",
             {"setting": "payout.bank_account", "old": "DE89 **** 3000",
              "new": "BR15 **** 7741", "verification": "skipped"}, ["settings", "billing"]),
            "web", ip, ua)
    for _ in range(rng.randint(2, 4)):
        entity, number = c.invoice()
        pl.emit((60, 300), "invoice.updated", actor,
                (entity, "high", {"invoice_number": number, "changed_fields": ["remit_to"],
                                  "amount": c.amount(9.0, 0.4)}, ["billing"]), "web", ip, ua)


def _i_controls_weakened(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = _pick(c.cast, rng, "hr", "people_ops_admin")
    ip, ua, source = who.devices[1]
    actor = who.actor()
    changes = (
        ("sso.enforced", True, False, "high"),
        ("mfa.required", True, False, "critical"),
        ("audit.retention_days", 365, 7, "high"),
        ("network.ip_allowlist", ["192.0.2.0/24"], [], "high"),
    )
    for setting, old, new, sev in changes:
        pl.emit((30, 240), "settings.changed", actor,
                ({"type": "settings", "id": "security"}, sev,
                 {"setting": setting, "old": old, "new": new}, ["settings", "security"]),
                source, ip, ua)
    pl.emit((30, 180), "webhook.deleted", actor,
            ({"type": "webhook", "id": f"wh_{rng.getrandbits(32):08x}"}, "high",
             {"name": "siem-forwarder", "events": ["*"]}, ["integrations", "security"]),
            source, ip, ua)


def _i_departure(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = _pick(c.cast, rng, "sales", "account_executive")
    ip, ua, source = who.devices[1]
    actor = who.actor()
    datasets = ("customers", "contacts", "pipeline", "opportunities", "price_books")
    for n in range(rng.randint(12, 18)):
        rows = rng.randint(20_000, 90_000)
        pl.emit((60, 360), "export.downloaded", actor,
                ({"type": "export", "id": f"exp_{rng.getrandbits(40):010x}"}, "high",
                 {"dataset": datasets[n % len(datasets)], "rows": rows, "format": "csv",
                  "size_kb": rows // 5}, ["export", "pii"]), source, ip, ua)
    pl.emit((60, 300), "report.shared", actor,
            ({"type": "report", "id": "pipeline"}, "critical",
             {"recipient_domain": "gmail.com", "link_expires_in_days": None, "rows": 64_000},
             ["sharing", "external"]), source, ip, ua)


def _i_backdoor(pl: _Planter) -> None:
    c, rng = pl.ctx, pl.rng
    who = c.cast.dormant
    actor = who.actor()
    ip, ua = pl.attacker_ip(), DESKTOP_UAS[4]
    pl.emit((0, 60), "user.login", actor,
            ({"type": "user", "id": who.id}, "high",
             {"method": "password", "mfa": None, "geo": {"country": "SG", "city": "Singapore"},
              "days_since_last_login": rng.randint(140, 220)}, ["auth"]), "web", ip, ua)
    outsider = f"it.helpdesk.{rng.randint(10, 99)}@proton.me"
    pl.emit((60, 240), "user.invited", actor,
            ({"type": "user", "id": outsider}, "high",
             {"role": "member", "external_domain": True, "expires_in_days": 7}, ["access"]),
            "web", ip, ua)
    pl.emit((120, 400), "role.granted", actor,
            ({"type": "user", "id": outsider}, "critical",
             {"role": "admin", "granted_to": outsider, "ticket": None}, ["access", "privilege"]),
            "web", ip, ua)
    newcomer = {"id": outsider, "type": "user", "role": "admin"}
    pl.emit((300, 900), "user.login", newcomer,
            ({"type": "user", "id": outsider}, "high",
             {"method": "password", "mfa": None, "geo": {"country": "SG", "city": "Singapore"}},
             ["auth"]), "web", ip, ua)
    pl.emit((60, 300), "api_key.created", newcomer,
            ({"type": "api_key", "id": f"key_live_{rng.getrandbits(64):016x}"}, "high",
             {"name": "backup", "scopes": ["admin:*"], "expires_in_days": None}, ["api-keys"]),
            "web", ip, ua)


_PLANTERS: dict[str, Callable[[_Planter], None]] = {
    "invoice_purge": _i_invoice_purge,
    "login_burst_mfa_off": _i_login_burst,
    "refund_abuse": _i_refund_abuse,
    "self_escalation_export": _i_self_escalation,
    "api_key_night_burst": _i_api_key_burst,
    "impossible_travel": _i_impossible_travel,
    "controls_weakened": _i_controls_weakened,
    "departure_exfiltration": _i_departure,
    "dormant_admin_backdoor": _i_backdoor,
}


def _local_day(tz: ZoneInfo, start: datetime, day: int) -> date:
    return (start + timedelta(days=day, hours=12)).astimezone(tz).date()


def _plant(ctx: Ctx, start: datetime, end: datetime, days: int) -> list[Raw]:
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
        planter = _Planter(ctx, kind_name, t0)
        _PLANTERS[kind_name](planter)
        out.extend(planter.out)
    return out


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


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
    planted = _plant(ctx, start, end, days)
    remaining = max(0, days * events_per_day - len(planted))
    service_target = round(remaining * 0.12)
    raw = _baseline(ctx, start, end, remaining - service_target, service_target) + planted
    raw.sort(key=lambda item: item[0])
    return [event for _, event in raw]


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
