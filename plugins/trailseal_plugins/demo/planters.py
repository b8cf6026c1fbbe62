"""The scripts of the planted incidents: what each one does, event by event. Every event
of an incident carries its marker as ``request_id``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from random import Random

from .builders import BUILDERS, Built, Ctx
from .cast import DESKTOP_UAS, HEADLESS_UA, Cast, Person
from .events import Raw, make_event, marker, random_request_id

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


def play_incident(ctx: Ctx, kind: str, t0: datetime) -> list[Raw]:
    """The events of one incident of ``kind``, played from ``t0`` on."""
    planter = _Planter(ctx, kind, t0)
    _PLANTERS[kind](planter)
    return planter.out
