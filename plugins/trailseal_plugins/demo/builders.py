"""Event builders, one per event type: each draws an event's entity, severity, details
and tags from the run's random generator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from .cast import DEPARTMENTS, FIRST_NAMES, LAST_NAMES, Cast, Person

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
class Ctx:
    """The random generator and the cast that the event builders of one run share."""

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


# What an event builder returns: entity, severity, details, tags.
Built = tuple[dict[str, str], str, dict[str, Any], list[str]]


def _b_login(c: Ctx, who: Person | None) -> Built:
    method = who.login_method if who else "password"
    return ({"type": "user", "id": who.id if who else "unknown"}, "info",
            {"method": method, "mfa": "webauthn" if method == "sso" else "totp",
             "geo": dict(c.cast.geo)}, ["auth"])


def _b_logout(c: Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": who.id if who else "unknown"}, "info",
            {"session_minutes": c.rng.randint(3, 240)}, ["auth"])


def _b_login_failed(c: Ctx, who: Person | None) -> Built:
    reason = c.rng.choice(("invalid_password", "invalid_password", "expired_mfa_code"))
    return ({"type": "user", "id": who.id if who else "unknown"}, "low",
            {"reason": reason, "attempt": 1, "geo": dict(c.cast.geo)}, ["auth", "failed-login"])


def _b_password(c: Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": who.id if who else "unknown"}, "low",
            {"initiated_by": "user", "sessions_revoked": c.rng.randint(0, 3)}, ["auth"])


def _b_password_reset(c: Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": f"u_{c.rng.getrandbits(40):010x}"}, "low",
            {"delivery": "email", "requested_via": "support_ticket",
             "ticket": f"TCK-{c.rng.randint(20000, 48000)}"}, ["auth", "support"])


def _b_customer_viewed(c: Ctx, who: Person | None) -> Built:
    return ({"type": "customer", "id": c.customer()}, "info",
            {"tab": c.rng.choice(("overview", "billing", "contacts", "activity"))}, ["crm"])


def _b_customer_updated(c: Ctx, who: Person | None) -> Built:
    changed = sorted(c.rng.sample(_CUSTOMER_FIELDS, c.rng.randint(1, 3)))
    tags = ["crm", "pii"] if _PII_FIELDS.intersection(changed) else ["crm"]
    return ({"type": "customer", "id": c.customer()}, "info", {"changed_fields": changed}, tags)


def _b_customer_created(c: Ctx, who: Person | None) -> Built:
    return ({"type": "customer", "id": f"cus_{c.rng.getrandbits(48):012x}"}, "info",
            {"plan": c.rng.choice(("starter", "business", "business", "enterprise")),
             "seats": c.rng.choice((3, 5, 10, 25, 50, 120)),
             "country": c.rng.choice(("US", "DE", "GB", "FR", "CA", "NL", "AU"))}, ["crm"])


def _b_report_viewed(c: Ctx, who: Person | None) -> Built:
    report = c.rng.choice(("mrr", "churn", "ar_aging", "pipeline", "ticket_sla", "headcount"))
    return ({"type": "report", "id": report}, "info",
            {"range_days": c.rng.choice((7, 30, 90))}, ["analytics"])


def _b_report_generated(c: Ctx, who: Person | None) -> Built:
    report = c.rng.choice(("mrr", "churn", "ar_aging", "usage"))
    return ({"type": "report", "id": report}, "info",
            {"schedule": "daily", "rows": c.rng.randint(40, 4000),
             "duration_ms": c.rng.randint(300, 9000)}, ["analytics"])


def _b_export(c: Ctx, who: Person | None) -> Built:
    dataset = c.rng.choice(_DATASETS)
    rows = int(min(c.rng.lognormvariate(5.5, 1.0), 6000)) + 1
    tags = ["export", "pii"] if dataset == "customers" else ["export"]
    return ({"type": "export", "id": f"exp_{c.rng.getrandbits(40):010x}"}, "low",
            {"dataset": dataset, "rows": rows, "format": c.rng.choice(("csv", "csv", "xlsx")),
             "size_kb": rows // 6 + 3}, tags)


def _b_settings(c: Ctx, who: Person | None) -> Built:
    setting, old, new = c.rng.choice(_SETTINGS)
    if c.rng.random() < 0.5:
        old, new = new, old
    return ({"type": "settings", "id": "workspace"}, "low",
            {"setting": setting, "old": old, "new": new}, ["settings"])


def _b_opportunity(c: Ctx, who: Person | None) -> Built:
    return ({"type": "opportunity", "id": f"opp_{c.rng.getrandbits(40):010x}"}, "info",
            {"stage": c.rng.choice(("qualified", "discovery_call", "proposal", "negotiation",
                                    "closed_won", "closed_lost")),
             "amount": c.amount(8.5, 0.9), "currency": c.cast.profile.currency}, ["sales"])


def _b_ticket(c: Ctx, who: Person | None, status: str | None = None) -> Built:
    return ({"type": "ticket", "id": f"TCK-{c.rng.randint(20000, 48000)}"}, "info",
            {"status": status or c.rng.choice(("open", "pending", "waiting_on_customer")),
             "priority": c.rng.choice(("low", "normal", "normal", "high")),
             "customer_id": c.customer()}, ["support"])


def _b_invoice_created(c: Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    return (entity, "info",
            {"invoice_number": number, "customer_id": c.customer(), "amount": c.amount(),
             "currency": c.cast.profile.currency, "line_items": c.rng.randint(1, 9),
             "due_in_days": c.rng.choice((14, 30, 30, 45))}, ["billing"])


def _b_invoice_updated(c: Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    changed = sorted(c.rng.sample(("due_date", "line_items", "notes", "discount", "po_number"),
                                  c.rng.randint(1, 2)))
    return (entity, "info",
            {"invoice_number": number, "changed_fields": changed, "amount": c.amount()},
            ["billing"])


def _b_invoice_sent(c: Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    return (entity, "info",
            {"invoice_number": number, "customer_id": c.customer(), "channel": "email"},
            ["billing"])


def _b_invoice_deleted(c: Ctx, who: Person | None) -> Built:
    entity, number = c.invoice()
    return (entity, "medium",
            {"invoice_number": number, "amount": c.amount(), "status": "draft",
             "reason": c.rng.choice(("duplicate", "created_in_error", "customer_cancelled"))},
            ["billing", "deletion"])


def _b_refund(c: Ctx, who: Person | None) -> Built:
    amount = round(min(c.rng.lognormvariate(4.6, 0.9), 1500.0), 2)
    return ({"type": "payment", "id": f"pay_{c.rng.getrandbits(48):012x}"},
            "medium" if amount > 750 else "low",
            {"amount": amount, "currency": c.cast.profile.currency, "customer_id": c.customer(),
             "reason": c.rng.choice(("customer_request", "duplicate_charge", "service_issue"))},
            ["billing", "refund"])


def _b_payment(c: Ctx, who: Person | None) -> Built:
    return ({"type": "payment", "id": f"pay_{c.rng.getrandbits(48):012x}"}, "info",
            {"amount": c.amount(), "currency": c.cast.profile.currency,
             "customer_id": c.customer(), "method": c.rng.choice(("card", "card", "sepa", "ach"))},
            ["billing"])


def _b_payment_failed(c: Ctx, who: Person | None) -> Built:
    return ({"type": "payment", "id": f"pay_{c.rng.getrandbits(48):012x}"}, "low",
            {"amount": c.amount(), "currency": c.cast.profile.currency,
             "customer_id": c.customer(),
             "decline_code": c.rng.choice(("insufficient_funds", "expired_card", "do_not_honor"))},
            ["billing"])


def _b_subscription(c: Ctx, who: Person | None) -> Built:
    return ({"type": "subscription", "id": f"sub_{c.rng.getrandbits(40):010x}"}, "info",
            {"plan": c.rng.choice(("starter", "business", "enterprise")),
             "amount": c.amount(6.2, 0.7), "currency": c.cast.profile.currency,
             "interval": c.rng.choice(("month", "month", "year"))}, ["billing"])


def _b_order(c: Ctx, who: Person | None) -> Built:
    return ({"type": "order", "id": f"ord_{c.rng.getrandbits(48):012x}"}, "info",
            {"customer_id": c.customer(), "amount": c.amount(6.5, 0.9),
             "currency": c.cast.profile.currency, "items": c.rng.randint(1, 12)}, ["orders"])


def _b_api_key_created(c: Ctx, who: Person | None) -> Built:
    return ({"type": "api_key", "id": f"key_live_{c.rng.getrandbits(64):016x}"}, "medium",
            {"name": c.rng.choice(("ci-deploy", "metrics-export", "staging-sync", "zapier")),
             "scopes": sorted(c.rng.sample(("read:invoices", "read:customers", "write:orders",
                                            "read:reports"), 2)),
             "expires_in_days": c.rng.choice((30, 90, 180))}, ["api-keys"])


def _b_api_key_revoked(c: Ctx, who: Person | None) -> Built:
    return ({"type": "api_key", "id": f"key_live_{c.rng.getrandbits(64):016x}"}, "low",
            {"reason": c.rng.choice(("rotation", "unused", "owner_left"))}, ["api-keys"])


def _b_webhook(c: Ctx, who: Person | None) -> Built:
    return ({"type": "webhook", "id": f"wh_{c.rng.getrandbits(32):08x}"}, "low",
            {"changed_fields": [c.rng.choice(("url", "events", "secret", "enabled"))]},
            ["integrations"])


def _b_integration(c: Ctx, who: Person | None) -> Built:
    name = c.rng.choice(("slack", "salesforce", "quickbooks", "github", "zendesk"))
    return ({"type": "integration", "id": name}, "low",
            {"changed_fields": [c.rng.choice(("channel", "mapping", "sync_interval"))]},
            ["integrations"])


def _b_deployment(c: Ctx, who: Person | None) -> Built:
    return ({"type": "deployment", "id": f"dep_{c.rng.getrandbits(32):08x}"}, "info",
            {"environment": c.rng.choice(("staging", "staging", "production")),
             "version": f"2.{c.rng.randint(10, 40)}.{c.rng.randint(0, 9)}",
             "duration_s": c.rng.randint(40, 600)}, ["engineering"])


def _b_role_granted(c: Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "medium",
            {"role": c.rng.choice(("member", "billing_admin", "support_lead", "report_viewer")),
             "granted_to": target.id, "ticket": f"IT-{c.rng.randint(1000, 9999)}"},
            ["access"])


def _b_role_revoked(c: Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "medium",
            {"role": c.rng.choice(("billing_admin", "support_lead", "report_viewer")),
             "revoked_from": target.id, "ticket": f"IT-{c.rng.randint(1000, 9999)}"},
            ["access"])


def _b_alert_ack(c: Ctx, who: Person | None) -> Built:
    return ({"type": "alert", "id": f"alr_{c.rng.getrandbits(32):08x}"}, "info",
            {"rule": c.rng.choice(("new_country_login", "many_failed_logins", "large_export")),
             "resolution": c.rng.choice(("benign", "benign", "expected_activity"))}, ["security"])


def _b_mfa_reset(c: Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "medium",
            {"reason": "lost_device", "ticket": f"IT-{c.rng.randint(1000, 9999)}"},
            ["auth", "security"])


def _b_user_invited(c: Ctx, who: Person | None) -> Built:
    first, last = c.rng.choice(FIRST_NAMES), c.rng.choice(LAST_NAMES)
    email = f"{first}.{last}@{c.cast.profile.domain}".lower()
    return ({"type": "user", "id": email}, "low",
            {"role": "member", "department": c.rng.choice(DEPARTMENTS), "expires_in_days": 7},
            ["access"])


def _b_user_deactivated(c: Ctx, who: Person | None) -> Built:
    return ({"type": "user", "id": f"u_{c.rng.getrandbits(40):010x}"}, "medium",
            {"reason": c.rng.choice(("offboarding", "contract_ended")), "sessions_revoked": 1},
            ["access"])


def _b_user_updated(c: Ctx, who: Person | None) -> Built:
    target = c.colleague()
    return ({"type": "user", "id": target.id}, "info",
            {"changed_fields": [c.rng.choice(("title", "manager", "department", "location"))]},
            ["hr"])


# Event type -> the builder of its entity, severity, details and tags.
BUILDERS: dict[str, Callable[[Ctx, Person | None], Built]] = {
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
