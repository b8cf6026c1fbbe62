"""Each tenant's cast: people with stable roles, departments, addresses and browsers, and the
service accounts that run around the clock. It depends on the tenant only, not the seed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from random import Random

from .profiles import Profile, stable_hash

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Chen", "Olivia", "Lukas", "Priya", "Daniel", "Sofia", "Mateo",
    "Hannah", "Kenji", "Fatima", "Noah", "Elena", "Marcus", "Ingrid", "Omar", "Grace", "Tomas",
    "Zoe", "Ravi", "Claire", "Jonas", "Amara", "Peter", "Leila", "Samuel", "Nina", "Diego",
    "Yuki", "Ethan", "Freya", "Andre", "Mei", "Victor", "Julia", "Kwame", "Anna", "Felix",
)
LAST_NAMES = (
    "Garcia", "Smith", "Okafor", "Wei", "Brown", "Schmidt", "Patel", "Kim", "Rossi", "Lopez",
    "Fischer", "Tanaka", "Haddad", "Johnson", "Novak", "Reed", "Larsen", "Farouk", "Murphy",
    "Silva", "Meyer", "Nguyen", "Dubois", "Weber", "Mensah", "Kowalski", "Cohen", "Hughes",
    "Bauer", "Ortiz", "Sato", "Walsh", "Lindqvist", "Costa", "Huang", "Petrov", "Keller",
    "Adeyemi", "Moreau", "Becker",
)

DEPARTMENTS = ("sales", "support", "engineering", "finance", "security", "hr")
_DEPT_SHARE = (0.24, 0.22, 0.22, 0.16, 0.08, 0.08)
_ROLES = {
    "sales": (("account_executive", 5), ("sales_manager", 1)),
    "support": (("support_agent", 5), ("support_lead", 1)),
    "engineering": (("developer", 5), ("sre", 2), ("workspace_admin", 1)),
    "finance": (("accountant", 3), ("billing_admin", 2), ("finance_manager", 1)),
    "security": (("security_analyst", 2), ("security_admin", 1)),
    "hr": (("hr_partner", 2), ("people_ops_admin", 1)),
}

DESKTOP_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_MOBILE_UAS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.113 Mobile Safari/537.36",
)
_CLI_UAS = ("python-requests/2.31.0", "curl/8.6.0", "PostmanRuntime/7.37.3")
HEADLESS_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/122.0.0.0 Safari/537.36"
)


@dataclass
class Person:
    """One member of a tenant's staff and the devices they work from."""

    id: str
    name: str
    department: str
    role: str
    devices: list[tuple[str, str, str]]  # (ip, user agent, source)
    device_cum: list[float]
    login_method: str
    activity: float

    def actor(self) -> dict[str, str]:
        return {"id": self.id, "type": "user", "role": self.role, "department": self.department}


@dataclass
class _Service:
    actor: dict[str, str]
    ip: str
    user_agent: str
    source: str
    events: tuple[tuple[str, float], ...]


@dataclass
class Cast:
    """Everyone who acts in one tenant: people, service accounts and customers."""

    profile: Profile
    people: list[Person]
    people_cum: list[float]
    dormant: Person
    services: list[_Service]
    service_cum: list[float]
    customers: list[str]
    geo: dict[str, str]


def _public_ip(rng: Random, first_octets: tuple[int, ...]) -> str:
    return (
        f"{rng.choice(first_octets)}.{rng.randint(1, 254)}."
        f"{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def build_cast(profile: Profile) -> Cast:
    """The people and service accounts of a tenant; depends on the tenant only, not the seed."""
    rng = Random(stable_hash("cast:" + profile.slug))
    n = profile.cast_size
    depts: list[str] = ["finance", "finance", "security", "hr", "engineering", "support", "sales"]
    while len(depts) < n:
        depts.append(rng.choices(DEPARTMENTS, weights=_DEPT_SHARE)[0])
    rng.shuffle(depts)
    net = profile.office_net
    office = [f"{net}.{rng.randint(10, 60)}", f"{net}.{rng.randint(61, 120)}"]
    names = [(f, la) for f in FIRST_NAMES for la in LAST_NAMES]
    rng.shuffle(names)
    people: list[Person] = []
    seen: set[str] = set()
    for dept, (first, last) in zip(depts, names, strict=False):
        handle = f"{first}.{last}".lower()
        if handle in seen:
            continue
        seen.add(handle)
        roles, weights = zip(*_ROLES[dept], strict=True)
        role = rng.choices(roles, weights=weights)[0]
        desktop = rng.choice(DESKTOP_UAS)
        home = _public_ip(rng, profile.home_octets)
        devices = [(rng.choice(office), desktop, "web"), (home, desktop, "web")]
        dev_w = [0.62, 0.22]
        if rng.random() < 0.55:
            mobile_ip = (
                f"{profile.mobile_prefix}:{rng.randint(0x1000, 0xFFFF):x}"
                f"::{rng.randint(1, 0xFFFF):x}"
            )
            devices.append((mobile_ip, rng.choice(_MOBILE_UAS), "mobile"))
            dev_w.append(0.12)
        if dept == "engineering":
            devices.append((devices[0][0], rng.choice(_CLI_UAS), "api"))
            dev_w.append(0.14)
        people.append(
            Person(
                id=f"{handle}@{profile.domain}",
                name=f"{first} {last}",
                department=dept,
                role=role,
                devices=devices,
                device_cum=list(itertools.accumulate(dev_w)),
                login_method=rng.choice(("sso", "sso", "password")),
                activity=rng.lognormvariate(0, 0.5),
            )
        )
    # One admin account that has been idle for months: it never shows up in daily work.
    dormant = next(p for p in people if p.department == "engineering")
    dormant.role = "workspace_admin"
    active = [p for p in people if p is not dormant]

    internal = f"10.{rng.randint(10, 40)}.{rng.randint(0, 255)}"
    key_id = f"key_live_{rng.getrandbits(64):016x}"
    services = [
        _Service(
            {"id": "billing-service", "type": "service", "role": "system"},
            f"{internal}.11", "billing-service/3.8.2", "billing-service",
            (("invoice.created", 4), ("payment.captured", 6), ("payment.failed", 1),
             ("subscription.renewed", 2), ("invoice.sent", 3)),
        ),
        _Service(
            {"id": "crm-sync", "type": "service", "role": "system"},
            f"{internal}.24", "crm-sync/1.12.0 (+httpx/0.27.0)", "crm-sync",
            (("customer.updated", 5), ("customer.created", 1)),
        ),
        _Service(
            {"id": "report-scheduler", "type": "service", "role": "system"},
            f"{internal}.37", "scheduler/2.4.1", "scheduler",
            (("report.generated", 1),),
        ),
        _Service(
            {"id": key_id, "type": "api_key", "role": "integration"},
            _public_ip(rng, (34, 35, 52, 54)), "erp-connector/5.2 (Java/17.0.9)", "api",
            (("order.created", 4), ("customer.updated", 2), ("invoice.updated", 1)),
        ),
    ]
    customers = [f"cus_{rng.getrandbits(48):012x}" for _ in range(220)]
    return Cast(
        profile=profile,
        people=active,
        people_cum=list(itertools.accumulate(p.activity for p in active)),
        dormant=dormant,
        services=services,
        service_cum=list(itertools.accumulate((5.0, 3.0, 0.6, 2.5))),
        customers=customers,
        geo={"country": profile.country, "city": profile.city},
    )
