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

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from .cast import (
    DEPARTMENTS,
    DESKTOP_UAS,
    FIRST_NAMES,
    HEADLESS_UA,
    LAST_NAMES,
    Cast,
    Person,
    build_cast,
)
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

_CUSTOMER_FIELDS = ("billing_email", "phone", "address", "plan", "seats", "tax_id", "owner",
                    "notes", "company_name")
_PII_FIELDS = {"billing_email", "phone", "address", "tax_id"}
_SETTINGS = (
    ("notifications.digest", "daily", "weekly"),
    ("branding.logo", "logo-v1.png", "logo-v2.png"),
    ("invoices.default_terms_days", 30, 45),
    ("locale.date_format", "MM/DD/YYYY", "YYYY-MM-DD"),
    ("session.timeout_minutes", 60, 30),
)
_DATASETS = ("invoices", "customers", "tickets", "pipeline", "payments")


@dataclass
class _Ctx:
    rng: Random
    cast: Cast

    def customer(self) -> str:
        return self.rng.choice(self.cast.customers)

    def invoice(self) -> tuple[dict[str, str], str]:
        number = f"INV-{self.rng.randint(18000, 48999)}"
        return {"type": "invoice", "id": f"inv_{self.rng.getrandbits(48):012x}"}, number

    def amount(self, mu: float = 6.9, sigma: float = 0.8, cap: float = 60000.0) -> float:
        return round(min(self.rng.lognormvariate(mu, sigma), cap), 2)

    def colleague(self) -> Person:
        return self.rng.choice(self.cast.people)


Built = tuple[dict[str, str], str, dict[str, Any], list[str]]  # entity, severity, details, tags


def _b_login(c: _Ctx, who: Person | None) -> Built:
    method = who.login_method if who else "password"
    return ({"type": "user", "id": who.id if who else "unknown"}, "info",
            {"method": method, "mfa": "webauthn" if method == "sso" else "totp",
             "geo": dict(c.cast.geo)}, ["auth"])


def _b_logout(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": who.id if who else "unknown"}, "info",
            {"session_minutes": c.rng.randint(3, 240)}, ["auth"])


def _b_login_failed(c: _Ctx, who: Person | None) -> Built:
    reason = c.rng.choice(("invalid_password", "invalid_password", "expired_mfa_code"))
    return ({"type": "user", "id": who.id if who else "unknown"}, "low",
            {"reason": reason, "attempt": 1, "geo": dict(c.cast.geo)}, ["auth", "failed-login"])


def _b_password(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": who.id if who else "unknown"}, "low",
            {"initiated_by": "user", "sessions_revoked": c.rng.randint(0, 3)}, ["auth"])


def _b_password_reset(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": f"u_{c.rng.getrandbits(40):010x}"}, "low",
            {"delivery": "email", "requested_via": "support_ticket",
             "ticket": f"TCK-{c.rng.randint(20000, 48000)}"}, ["auth", "support"])


def _b_customer_viewed(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "customer", "id": c.customer()}, "info",
            {"tab": c.rng.choice(("overview", "billing", "contacts", "activity"))}, ["crm"])


def _b_customer_updated(c: _Ctx, who: Person | None) -> Built:
    changed = sorted(c.rng.sample(_CUSTOMER_FIELDS, c.rng.randint(1, 3)))
    tags = ["crm", "pii"] if _PII_FIELDS.intersection(changed) else ["crm"]
    return ({"type": "customer", "id": c.customer()}, "info", {"changed_fields": changed}, tags)


def _b_customer_created(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "customer", "id": f"cus_{c.rng.getrandbits(48):012x}"}, "info",
            {"plan": c.rng.choice(("starter", "business", "business", "enterprise")),
             "seats": c.rng.choice((3, 5, 10, 25, 50, 120)),
             "country": c.rng.choice(("US", "DE", "GB", "FR", "CA", "NL", "AU"))}, ["crm"])


def _b_report_viewed(c: _Ctx, who: Person | None) -> Built:
    report = c.rng.choice(("mrr", "churn", "ar_aging", "pipeline", "ticket_sla", "headcount"))
    return ({"type": "report", "id": report}, "info",
            {"range_days": c.rng.choice((7, 30, 90))}, ["analytics"])


def _b_report_generated(c: _Ctx, who: Person | None) -> Built:
    report = c.rng.choice(("mrr", "churn", "ar_aging", "usage"))
    return ({"type": "report", "id": report}, "info",
            {"schedule": "daily", "rows": c.rng.randint(40, 4000),
             "duration_ms": c.rng.randint(300, 9000)}, ["analytics"])


def _b_export(c: _Ctx, who: Person | None) -> Built:
    dataset = c.rng.choice(_DATASETS)
    rows = int(min(c.rng.lognormvariate(5.5, 1.0), 6000)) + 1
    tags = ["export", "pii"] if dataset == "customers" else ["export"]
    return ({"type": "export", "id": f"exp_{c.rng.getrandbits(40):010x}"}, "low",
            {"dataset": dataset, "rows": rows, "format": c.rng.choice(("csv", "csv", "xlsx")),
             "size_kb": rows // 6 + 3}, tags)


def _b_settings(c: _Ctx, who: Person | None) -> Built:
    setting, old, new = c.rng.choice(_SETTINGS)
    if c.rng.random() < 0.5:
        old, new = new, old
    return ({"type": "settings", "id": "workspace"}, "low",
            {"setting": setting, "old": old, "new": new}, ["settings"])


def _b_opportunity(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "opportunity", "id": f"opp_{c.rng.getrandbits(40):010x}"}, "info",
            {"stage": c.rng.choice(("qualified", "discovery_call", "proposal", "negotiation",
                                    "closed_won", "closed_lost")),
             "amount": c.amount(8.5, 0.9), "currency": c.cast.profile.currency}, ["sales"])


def _b_ticket(c: _Ctx, who: Person | None, status: str | None = None) -> Built:
    return ({"type": "ticket", "id": f"TCK-{c.rng.randint(20000, 48000)}"}, "info",
            {"status": status or c.rng.choice(("open", "pending", "waiting_on_customer")),
             "priority": c.rng.choice(("low", "normal", "normal", "high")),
             "customer_id": c.customer()}, ["support"])


def _b_invoice_created(c: _Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    return (entity, "info",
            {"invoice_number": number, "customer_id": c.customer(), "amount": c.amount(),
             "currency": c.cast.profile.currency, "line_items": c.rng.randint(1, 9),
             "due_in_days": c.rng.choice((14, 30, 30, 45))}, ["billing"])


def _b_invoice_updated(c: _Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    changed = sorted(c.rng.sample(("due_date", "line_items", "notes", "discount", "po_number"),
                                  c.rng.randint(1, 2)))
    return (entity, "info",
            {"invoice_number": number, "changed_fields": changed, "amount": c.amount()},
            ["billing"])


def _b_invoice_sent(c: _Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    return (entity, "info",
            {"invoice_number": number, "customer_id": c.customer(), "channel": "email"},
            ["billing"])


def _b_invoice_deleted(c: _Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    return (entity, "medium",
            {"invoice_number": number, "amount": c.amount(), "status": "draft",
             "reason": c.rng.choice(("duplicate", "created_in_error", "customer_cancelled"))},
            ["billing", "deletion"])


def _b_refund(c: _Ctx, who: Person | None) -> Built:
    amount = round(min(c.rng.lognormvariate(4.6, 0.9), 1500.0), 2)
    return ({"type": "payment", "id": f"pay_{c.rng.getrandbits(48):012x}"},
            "medium" if amount > 750 else "low",
            {"amount": amount, "currency": c.cast.profile.currency, "customer_id": c.customer(),
             "reason": c.rng.choice(("customer_request", "duplicate_charge", "service_issue"))},
            ["billing", "refund"])


def _b_payment(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "payment", "id": f"pay_{c.rng.getrandbits(48):012x}"}, "info",
            {"amount": c.amount(), "currency": c.cast.profile.currency,
             "customer_id": c.customer(), "method": c.rng.choice(("card", "card", "sepa", "ach"))},
            ["billing"])


def _b_payment_failed(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "payment", "id": f"pay_{c.rng.getrandbits(48):012x}"}, "low",
            {"amount": c.amount(), "currency": c.cast.profile.currency,
             "customer_id": c.customer(),
             "decline_code": c.rng.choice(("insufficient_funds", "expired_card", "do_not_honor"))},
            ["billing"])


def _b_subscription(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "subscription", "id": f"sub_{c.rng.getrandbits(40):010x}"}, "info",
            {"plan": c.rng.choice(("starter", "business", "enterprise")),
             "amount": c.amount(6.2, 0.7), "currency": c.cast.profile.currency,
             "interval": c.rng.choice(("month", "month", "year"))}, ["billing"])


def _b_order(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "order", "id": f"ord_{c.rng.getrandbits(48):012x}"}, "info",
            {"customer_id": c.customer(), "amount": c.amount(6.5, 0.9),
             "currency": c.cast.profile.currency, "items": c.rng.randint(1, 12)}, ["orders"])


def _b_api_key_created(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "api_key", "id": f"key_live_{c.rng.getrandbits(64):016x}"}, "medium",
            {"name": c.rng.choice(("ci-deploy", "metrics-export", "staging-sync", "zapier")),
             "scopes": sorted(c.rng.sample(("read:invoices", "read:customers", "write:orders",
                                            "read:reports"), 2)),
             "expires_in_days": c.rng.choice((30, 90, 180))}, ["api-keys"])


def _b_api_key_revoked(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "api_key", "id": f"key_live_{c.rng.getrandbits(64):016x}"}, "low",
            {"reason": c.rng.choice(("rotation", "unused", "owner_left"))}, ["api-keys"])


def _b_webhook(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "webhook", "id": f"wh_{c.rng.getrandbits(32):08x}"}, "low",
            {"changed_fields": [c.rng.choice(("url", "events", "secret", "enabled"))]},
            ["integrations"])


def _b_integration(c: _Ctx, who: Person | None) -> Built:
    name = c.rng.choice(("slack", "salesforce", "quickbooks", "github", "zendesk"))
    return ({"type": "integration", "id": name}, "low",
            {"changed_fields": [c.rng.choice(("channel", "mapping", "sync_interval"))]},
            ["integrations"])


def _b_deployment(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "deployment", "id": f"dep_{c.rng.getrandbits(32):08x}"}, "info",
            {"environment": c.rng.choice(("staging", "staging", "production")),
             "version": f"2.{c.rng.randint(10, 40)}.{c.rng.randint(0, 9)}",
             "duration_s": c.rng.randint(40, 600)}, ["engineering"])


def _b_role_granted(c: _Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "medium",
            {"role": c.rng.choice(("member", "billing_admin", "support_lead", "report_viewer")),
             "granted_to": target.id, "ticket": f"IT-{c.rng.randint(1000, 9999)}"},
            ["access"])


def _b_role_revoked(c: _Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "medium",
            {"role": c.rng.choice(("billing_admin", "support_lead", "report_viewer")),
             "revoked_from": target.id, "ticket": f"IT-{c.rng.randint(1000, 9999)}"},
            ["access"])


def _b_alert_ack(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "alert", "id": f"alr_{c.rng.getrandbits(32):08x}"}, "info",
            {"rule": c.rng.choice(("new_country_login", "many_failed_logins", "large_export")),
             "resolution": c.rng.choice(("benign", "benign", "expected_activity"))}, ["security"])


def _b_mfa_reset(c: _Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "medium",
            {"reason": "lost_device", "ticket": f"IT-{c.rng.randint(1000, 9999)}"},
            ["auth", "security"])


def _b_user_invited(c: _Ctx, who: Person | None) -> Built:
    first, last = c.rng.choice(FIRST_NAMES), c.rng.choice(LAST_NAMES)
    email = f"{first}.{last}@{c.cast.profile.domain}".lower()
    return ({"type": "user", "id": email}, "low",
            {"role": "member", "department": c.rng.choice(DEPARTMENTS), "expires_in_days": 7},
            ["access"])


def _b_user_deactivated(c: _Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": f"u_{c.rng.getrandbits(40):010x}"}, "medium",
            {"reason": c.rng.choice(("offboarding", "contract_ended")), "sessions_revoked": 1},
            ["access"])


def _b_user_updated(c: _Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "info",
            {"changed_fields": [c.rng.choice(("title", "manager", "department", "location"))]},
            ["hr"])


_BUILDERS: dict[str, Callable[[_Ctx, Person | None], Built]] = {
    "user.login": _b_login,
    "user.logout": _b_logout,
    "user.login_failed": _b_login_failed,
    "user.password_changed": _b_password,
    "user.password_reset": _b_password_reset,
    "customer.viewed": _b_customer_viewed,
    "customer.updated": _b_customer_updated,
    "customer.created": _b_customer_created,
    "report.viewed": _b_report_viewed,
    "report.generated": _b_report_generated,
    "export.downloaded": _b_export,
    "settings.changed": _b_settings,
    "opportunity.updated": _b_opportunity,
    "ticket.updated": _b_ticket,
    "ticket.closed": lambda c, w: _b_ticket(c, w, "closed"),
    "invoice.created": _b_invoice_created,
    "invoice.updated": _b_invoice_updated,
    "invoice.sent": _b_invoice_sent,
    "invoice.deleted": _b_invoice_deleted,
    "payment.refunded": _b_refund,
    "payment.captured": _b_payment,
    "payment.failed": _b_payment_failed,
    "subscription.renewed": _b_subscription,
    "order.created": _b_order,
    "api_key.created": _b_api_key_created,
    "api_key.revoked": _b_api_key_revoked,
    "webhook.updated": _b_webhook,
    "integration.updated": _b_integration,
    "deployment.created": _b_deployment,
    "role.granted": _b_role_granted,
    "role.revoked": _b_role_revoked,
    "alert.acknowledged": _b_alert_ack,
    "mfa.reset": _b_mfa_reset,
    "user.invited": _b_user_invited,
    "user.deactivated": _b_user_deactivated,
    "user.updated": _b_user_updated,
}


# --------------------------------------------------------------------------------------------
# Event assembly
# --------------------------------------------------------------------------------------------

_Raw = tuple[datetime, dict[str, Any]]


def _ts(moment: datetime) -> str:
    # ``moment`` is always UTC-aware: "...T12:34:56.789+00:00" -> "...T12:34:56.789Z".
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def _event(
    moment: datetime, event_type: str, actor: dict[str, str], built: Built,
    source: str, ip: str, user_agent: str, request_id: str,
) -> _Raw:
    entity, severity, details, tags = built
    details["request_id"] = request_id
    return moment, {
        "event_type": event_type,
        "occurred_at": _ts(moment),
        "actor": dict(actor),
        "entity": entity,
        "severity": severity,
        "source": source,
        "ip_address": ip,
        "user_agent": user_agent,
        "action_details": details,
        "tags": tags,
    }


def _marker(slug: str, kind: str, event: dict[str, Any]) -> str:
    """The ``request_id`` of an incident event: recomputable from the event itself."""
    basis = f"{slug}|{kind}|{event['occurred_at']}|{event['event_type']}|{event['actor']['id']}"
    return "req_" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def _request_id(rng: Random) -> str:
    return f"req_{rng.getrandbits(96):024x}"


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
    ctx: _Ctx, start: datetime, end: datetime, human_target: int, service_target: int,
) -> list[_Raw]:
    rng, cast = ctx.rng, ctx.cast
    hours = max(1, int((end - start).total_seconds() // 3600))
    human_cum, service_cum = _slot_weights(cast.profile, start, hours)
    slots = range(hours)
    out: list[_Raw] = []

    # Background jobs and integrations.
    for k in rng.choices(slots, cum_weights=service_cum, k=service_target):
        moment = start + timedelta(hours=k, seconds=rng.random() * 3600)
        if moment >= end:
            continue
        svc = rng.choices(cast.services, cum_weights=cast.service_cum)[0]
        types, weights = zip(*svc.events, strict=True)
        event_type = rng.choices(types, weights=weights)[0]
        built = _BUILDERS[event_type](ctx, None)
        out.append(_event(moment, event_type, svc.actor, built, svc.source, svc.ip,
                          svc.user_agent, _request_id(rng)))

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
            built = _BUILDERS[event_type](ctx, who)
            out.append(_event(moment, event_type, actor, built, source, ip, ua,
                              _request_id(rng)))
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

    def __init__(self, ctx: _Ctx, kind: str, t0: datetime) -> None:
        self.ctx, self.rng, self.kind, self.t = ctx, ctx.rng, kind, t0
        self.out: list[_Raw] = []

    def attacker_ip(self) -> str:
        return f"{self.rng.choice(_ATTACKER_NETS)}.{self.rng.randint(2, 250)}"

    def emit(self, gap: tuple[float, float], event_type: str, actor: dict[str, str],
             built: Built, source: str, ip: str, ua: str, *, marked: bool = True) -> None:
        """Append an event ``gap`` seconds (drawn from the range) after the previous one.

        ``marked=False`` gives ordinary context (e.g. the normal sign-in that precedes an
        anomaly): it gets a random request id and is not part of the incident.
        """
        self.t += timedelta(seconds=self.rng.uniform(*gap))
        moment, ev = _event(self.t, event_type, actor, built, source, ip, ua, "")
        ev["action_details"]["request_id"] = (
            _marker(self.ctx.cast.profile.slug, self.kind, ev) if marked
            else _request_id(self.rng)
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
    login = _b_login(c, who)
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
    pl.emit((20, 90), "user.logout", who.actor(), _b_logout(c, who), "web", ip, ua)


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
        built = _b_customer_created(c, None)
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
    pl.emit((0, 60), "user.login", actor, _b_login(c, who), "web", office_ip, office_ua,
            marked=False)
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


def _plant(ctx: _Ctx, start: datetime, end: datetime, days: int) -> list[_Raw]:
    """Place each of the tenant's incidents on its own day (when the window allows)."""
    profile, rng = ctx.cast.profile, ctx.rng
    tz = ZoneInfo(profile.tz)
    interior = list(range(1, days - 1)) if days >= 4 else list(range(days))
    used: set[int] = set()
    out: list[_Raw] = []
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

    ctx = _Ctx(rng=Random(seed + stable_hash(profile.slug)), cast=build_cast(profile))
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
            if request_id == _marker(profile.slug, kind, event):
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
