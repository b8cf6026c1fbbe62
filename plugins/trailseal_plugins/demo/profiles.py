"""The demo tenants: their profiles (time zone, networks, cast size, incidents), the
dashboard users to create for each, and the data classes of the public API."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoTenant:
    """A tenant of the data set and the dashboard users to create for it."""

    name: str
    slug: str
    users: list[dict] = field(hash=False)


@dataclass(frozen=True)
class PlantedIncident:
    """A suspicious episode hidden in one tenant's events."""

    tenant_slug: str
    name: str
    description: str
    event_indices: list[int] = field(hash=False)


@dataclass(frozen=True)
class Profile:
    """What sets one tenant apart: names, time zone, networks, cast, incidents."""

    slug: str
    name: str
    tz: str
    domain: str
    currency: str
    country: str
    city: str
    office_net: str  # first three octets of the office egress addresses
    home_octets: tuple[int, ...]  # first octets of residential ISP ranges
    mobile_prefix: str  # IPv6 prefix of the local mobile carrier
    cast_size: int
    incidents: tuple[str, ...]


_PROFILES: dict[str, Profile] = {
    p.slug: p
    for p in (
        Profile(
            slug="acme",
            name="Acme Corp",
            tz="America/New_York",
            domain="acme.example",
            currency="USD",
            country="US",
            city="New York",
            office_net="198.51.100",
            home_octets=(24, 67, 71, 73, 98, 174),
            mobile_prefix="2600:380",
            cast_size=30,
            incidents=("invoice_purge", "login_burst_mfa_off", "refund_abuse"),
        ),
        Profile(
            slug="globex",
            name="Globex Corporation",
            tz="Europe/Berlin",
            domain="globex.example",
            currency="EUR",
            country="DE",
            city="Berlin",
            office_net="203.0.113",
            home_octets=(77, 79, 84, 87, 91, 93),
            mobile_prefix="2a02:3030",
            cast_size=36,
            incidents=("self_escalation_export", "api_key_night_burst", "impossible_travel"),
        ),
        Profile(
            slug="initech",
            name="Initech",
            tz="America/Chicago",
            domain="initech.example",
            currency="USD",
            country="US",
            city="Austin",
            office_net="192.0.2",
            home_octets=(24, 50, 66, 70, 72, 99),
            mobile_prefix="2600:1700",
            cast_size=22,
            incidents=("controls_weakened", "departure_exfiltration", "dormant_admin_backdoor"),
        ),
    )
}


def demo_tenants() -> list[DemoTenant]:
    """The three tenants of the data set (Acme Corp, Globex Corporation, Initech).

    Each comes with an admin, an analyst and a viewer account for the dashboard; passwords
    are at least 10 characters long. A fresh list is returned on every call.
    """
    tenants = []
    for p in _PROFILES.values():
        cap = p.slug.capitalize()
        users = [
            {"email": f"admin@{p.domain}", "role": "admin", "password": f"{cap}-Admin-2024!"},
            {"email": f"analyst@{p.domain}", "role": "analyst", "password": f"{cap}-Analyst-2024!"},
            {"email": f"viewer@{p.domain}", "role": "viewer", "password": f"{cap}-Viewer-2024!"},
        ]
        tenants.append(DemoTenant(name=p.name, slug=p.slug, users=users))
    return tenants


def tenant_profile(slug: str) -> Profile:
    """The profile of tenant ``slug`` (ValueError naming the known ones if there is none)."""
    try:
        return _PROFILES[slug]
    except KeyError:
        known = ", ".join(_PROFILES)
        raise ValueError(f"unknown tenant {slug!r}; choose one of {known}") from None


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
