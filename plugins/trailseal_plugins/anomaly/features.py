"""Behavioural features of an event, computed against the tenant's own history.

The history is a ``Profile``: counters per actor, per (actor, event type), (actor, entity
type), (actor, source address), (actor, network), (actor, user agent), per event type, and
each actor's events of the last hour. It is updated incrementally (``observe``), one event
at a time, and saved between runs, so scoring a new event never re-reads the tenant's past.

A value the tenant has never seen (an address, a network, a client …) is as rare as new
values of its kind are in the tenant: the profile counts, per kind, the values it has seen
exactly once (``Profile.kinds``), so a first address weighs little where people sign in
from ever new ones and stands out where two addresses are all there is.

Besides how often an actor did something, the profile keeps *when they first did it*
((actor, event type), (actor, user agent)) and when the tenant's trail began: how new a
behaviour is (``new_habits_1h``, ``new_habit_share_1h``) still tells a stolen key's run of
repeated calls apart from routine after the first few repeats, when the counts already
look ordinary.

``Profile.features(event)`` describes an event against what the profile has seen *before*
it; ``featurize`` walks a stream in order (describe, then fold in). Every feature has a
name, a label and a meaning (``FEATURES``; docs/user-guide.md, "Anomaly features").
"""

from __future__ import annotations

import ipaddress
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson

from trailseal.types import Event

WINDOW = 3600.0  # seconds: the sliding window of rates, bulk volumes and failure ratios
USUAL_SHARE = 0.05  # an hour is "usual" for an actor when it holds 5 % of their events
KNOWN_AFTER = 10  # past events before an actor's usual hours and rate are trusted
DAY = 86400.0
MAX_DAYS = 365.0


@dataclass(frozen=True)
class Feature:
    name: str
    label: str
    meaning: str


FEATURES: tuple[Feature, ...] = (
    Feature("hour_sin", "Hour of day (sine)", "sin(2π·hour/24) of the event's time in the "
            "tenant's time zone (the timezone setting; UTC by default)"),
    Feature("hour_cos", "Hour of day (cosine)", "cos(2π·hour/24): with the sine, the hour on "
            "a circle, so 23:00 and 01:00 are close"),
    Feature("weekday_sin", "Day of week (sine)", "sin(2π·weekday/7), Monday = 0, in the "
            "tenant's time zone"),
    Feature("weekday_cos", "Day of week (cosine)", "cos(2π·weekday/7)"),
    Feature("hours_from_usual", "Hours from the actor's usual hours",
            "circular distance (0–12 h) from the event's hour to the nearest hour holding at "
            "least 5 % of the actor's past events (hours in the tenant's time zone); 0 until "
            "the actor has 10 events"),
    Feature("actor_events_1h", "Actor's events in the last hour",
            "events by the same actor in the hour up to this one, this one included"),
    Feature("actor_rate_ratio", "Rate against the actor's norm",
            "log2 of the last hour's events over the actor's usual events per active hour; "
            "0 until the actor has 10 events"),
    Feature("actor_history", "Actor's past events", "log10(1 + events the actor did before)"),
    Feature("new_actor", "A new actor in a known trail",
            "for an actor's first event, log10(1 + events the tenant had before): a "
            "newcomer after months of stable activity scores high, the first actors of a "
            "new trail do not; 0 for known actors"),
    Feature("new_action_for_actor", "Rarity of this event type for the actor",
            "-log2((times the actor did this event type + 4·p) / (actor's events + 4)), p "
            "the type's share of the tenant's events: for an actor nobody knows yet, the "
            "type's rarity in the tenant; high for a first-time action of a long-known "
            "actor"),
    Feature("new_entity_type_for_actor", "Rarity of this entity type for the actor",
            "the same measure for (actor, entity type), except that for a value the tenant "
            "has never seen p is how often the tenant meets new values of that kind (its "
            "values seen only once over its events with one): where people sign in from "
            "ever new addresses, one more is not rare; where two addresses are all there "
            "is, a third is"),
    Feature("new_source_ip_for_actor", "Rarity of this source address for the actor",
            "the same measure for (actor, source IP); 0 when the event has no address"),
    Feature("new_network_for_actor", "Rarity of this network for the actor",
            "the same measure for (actor, network): the autonomous system when the event's "
            "details name one (asn, asNumber, as_number), else the address's /24 (IPv4) or "
            "/48 (IPv6)"),
    Feature("new_user_agent_for_actor", "Rarity of this user agent for the actor",
            "the same measure for (actor, user agent); 0 when the event has none"),
    Feature("rare_event_type", "Rarity of this event type in the tenant",
            "-log2((events of this type + ½) / (tenant's events + 1))"),
    Feature("days_since_actor_did_this", "Days since the actor last did this",
            "days since the actor's previous event of this type; for a first time, days "
            "since the actor's first event (capped at 365)"),
    Feature("exports_1h", "Exports in the last hour",
            "the actor's export, download, dump and snapshot-sharing events in the last hour"),
    Feature("deletions_1h", "Deletions in the last hour",
            "the actor's delete, remove, destroy, terminate and purge events in the last hour"),
    Feature("permission_changes_1h", "Permission changes in the last hour",
            "the actor's role, policy, grant, permission and credential changes in the last "
            "hour"),
    Feature("failure_ratio_1h", "Failure ratio in the last hour",
            "the actor's failed or denied events in the last hour beyond the first one, over "
            "their events in it (counted as at least 3): a lone failure is 0"),
    Feature("failures_1h", "Repeated failures in the last hour",
            "the actor's failed or denied events in the last hour, this one included, beyond "
            "the first one: a lone mistyped password is 0, a burst of 25 is 24"),
    Feature("privileged", "Privilege-sensitive action",
            "1 for event types that change permissions or credentials or touch security "
            "controls (audit logging, keys, secrets)"),
    Feature("severity_level", "Event severity", "0 info, 1 warning/low, 2 error/high, "
            "3 critical, as the event states it"),
    Feature("days_since_actor_last_seen", "Days the actor was away",
            "days since the actor's previous event, any type (capped at 365): a dormant "
            "account waking up"),
    Feature("new_country_for_actor", "Rarity of this country for the actor",
            "the rarity measure for (actor, country) when the event's details name a country "
            "(geo.country, country, sourceCountry); 0 otherwise"),
    Feature("amount_deviation", "Unusual amount for this event type",
            "how many standard deviations the event's largest amount (amount, total, rows, "
            "records, count, size, bytes in its details; log10 scale) is above that event "
            "type's usual amounts, the type's spread pooled with a prior one (a factor of 2, "
            "worth 10 amounts) so that a type with few amounts does not look extreme; 0 "
            "until the type has 3 amounts (amounts more than 3 "
            "deviations above the norm stay out of it, so a run of them does not become "
            "normal, unless they grow to a quarter of the type's amounts)"),
    Feature("novelty_total", "Novelty for the actor, all together",
            "the sum, over event type, entity type, address, network, user agent and "
            "country, of how far each of those rarities is above 1 bit: many new things at "
            "once"),
    Feature("privileged_newcomer", "Privileged action by a little-known actor",
            "for a privilege-sensitive event, 2 − log10(1 + the actor's past events), at "
            "least 0: 2 for an actor never seen, 0 from 99 past events on"),
    Feature("action_rarity", "How unusual this action is, all told",
            "the rarity of the event type in the tenant plus its rarity for the actor "
            "(-log2 P(type) − log2 P(type | actor), both as above): one column for what "
            "the two say together"),
    Feature("new_habits_1h", "Burst of new behaviour",
            "the actor's events in the last hour, this one included, that are new to them: "
            "an event type, or a user agent, they first used less than a day before (or "
            "never), once the tenant's trail is more than a day old; a run of new calls "
            "stays new however often they are repeated, and a young trail's first day is "
            "not a burst"),
    Feature("new_habit_share_1h", "Share of new behaviour in the last hour",
            "those events over the actor's events in the last hour (counted as at least 3): "
            "1 when everything the actor did in the hour is new to them"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
# The version of what the columns mean. A model trained under another set is not used (the
# tenant is scored by the baseline and retrained), and feature rows logged under another
# set are described again instead of reused. Set 2: a never-seen value's rarity from how
# often the tenant meets new values of its kind (``_value_rarity``), and the network is the
# autonomous system when the event's details name one.
FEATURE_SET = 2
FEATURE_SET_KEY = "feature_set"
INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
_NAME_SET = frozenset(FEATURE_NAMES)
N_FEATURES = len(FEATURES)
HOUR_SIN = [math.sin(2 * math.pi * h / 24) for h in range(24)]
HOUR_COS = [math.cos(2 * math.pi * h / 24) for h in range(24)]
DAY_SIN = [math.sin(2 * math.pi * d / 7) for d in range(7)]
DAY_COS = [math.cos(2 * math.pi * d / 7) for d in range(7)]
RECENT_MAX = 5000  # an actor's last-hour entries kept at most
NOVELTY = ("new_action_for_actor", "new_entity_type_for_actor", "new_source_ip_for_actor",
           "new_network_for_actor", "new_user_agent_for_actor", "new_country_for_actor")
PRIOR = 4.0  # weight, in events, of the tenant-wide share in an actor's rarities
MIN_AMOUNTS = 3  # amounts of an event type before its norm is trusted
AMOUNT_CLIP = 3.0  # standard deviations above the norm from which an amount is extreme
HOLD_SHARE = 0.25  # extremes kept out of the norm while fewer than this share of it
# The spread an amount's deviation is measured in: the type's own standard deviation (log10
# scale) pooled with a prior one of SPREAD_PRIOR (a factor of two) worth SPREAD_WEIGHT
# amounts. A type with few amounts has a poorly known spread, often far too narrow (4
# payments of nearly one size make the fifth look 6 deviations off); the prior keeps such
# deviations modest until the type has shown its own spread, and hardly matters after
# dozens of amounts.
SPREAD_PRIOR = 0.3
SPREAD_WEIGHT = 10.0


def amount_spread(n: float, m2: float) -> float:
    """The standard deviation (log10 scale) deviations from an event type's usual amount are
    counted in, from ``n`` amounts with sum of squared deviations ``m2`` (see
    ``SPREAD_PRIOR``)."""
    return math.sqrt((max(0.0, m2) + SPREAD_WEIGHT * SPREAD_PRIOR ** 2)
                     / (max(0.0, n - 1) + SPREAD_WEIGHT))

EXPORT = re.compile(r"export|download|dump|backup|getobject|copyobject|copysnapshot|"
                    r"snapshotattribute|imageattribute|createexporttask|sharesnapshot", re.I)
DELETE = re.compile(r"delete|remove|destroy|terminate|purge|drop|wipe|erase", re.I)
PERMISSION = re.compile(r"permission|role|polic|grant|revoke|privilege|acl|attach|detach|"
                        r"accesskey|api_?key|loginprofile|password|credential|mfa|membership|"
                        r"addusertogroup|sharing|trust", re.I)
SECURITY = re.compile(r"stoplogging|deletetrail|updatetrail|eventselector|guardduty|"
                      r"securityhub|detector|flowlog|kms|secret|disable|deactivate|"
                      r"admin|root|sso|organizations", re.I)
FAILED_WORDS = re.compile(r"fail|denied|reject|unauthori[sz]ed|forbidden", re.I)
FAILED_TAGS = frozenset({"failed", "failure", "denied", "error", "unauthorized"})
FAILED_VALUES = frozenset({"failed", "failure", "denied", "error", "rejected", "unauthorized",
                           "forbidden"})
SEVERITY = {"info": 0, "debug": 0, "notice": 0, "low": 1, "warning": 1, "medium": 1,
            "error": 2, "high": 2, "critical": 3}
F_EXPORT, F_DELETE, F_PERMISSION, F_FAILED, F_NEW = 1, 2, 4, 8, 16
# ``new_habits_1h``: an (actor, event type) or (actor, user agent) first seen less than
# NEW_FOR before an event is new, when it was first seen at least SETTLED after the
# tenant's first event (on a trail's first day everything is new, which says nothing)
NEW_FOR = DAY
SETTLED = DAY
# Pruning (``Profile.prune``): an actor, or an (actor, event type) habit, not seen for
# FORGET_AFTER before the newest event is forgotten; ``featurize`` prunes whenever the trail
# has moved PRUNE_EVERY past the last pruning, so a long-lived tenant's profile holds what
# its people did in about the last 13 months, not everything they ever did.
FORGET_AFTER = 400 * DAY
PRUNE_EVERY = 7 * DAY
SEP = "\x1f"
NOVELTY_COLUMNS = tuple(INDEX[name] for name in NOVELTY)
AGENT_COLUMN = INDEX["new_user_agent_for_actor"]


ZONE_STEP = 900  # seconds: UTC offsets only change at quarter hours (cached per quarter)


@lru_cache(maxsize=256)
def zone_info(name: str) -> ZoneInfo | None:
    """The zone of an IANA name, None for UTC or a name this system does not know (read as
    UTC)."""
    if name in ("UTC", "Etc/UTC", ""):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=65536)
def _offset(name: str, quarter: int) -> int:
    zone = zone_info(name)
    if zone is None:
        return 0
    offset = datetime.fromtimestamp(quarter * ZONE_STEP, UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def local_seconds(ts: float, zone: str) -> float:
    """Seconds since the epoch of ``ts`` as the wall clock of ``zone`` reads it (the UTC
    offset in force at that instant added), for hours of day and days of week."""
    if zone == "UTC":
        return ts
    return ts + _offset(zone, int(ts // ZONE_STEP))


def parse_time(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=65536)
def network_of(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address, or None."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


@lru_cache(maxsize=4096)
def _failed_type(event_type: str) -> bool:
    return bool(FAILED_WORDS.search(event_type))


def failed(event: Event) -> bool:
    """Whether an event failed or was denied: its tags, its type, or its details say so."""
    for tag in event.tags:
        if tag.lower() in FAILED_TAGS:
            return True
    if _failed_type(event.event_type):
        return True
    details = event.action_details
    if isinstance(details, dict):
        if details.get("errorCode") or details.get("error_code"):
            return True
        for key in ("status", "outcome", "result"):
            value = details.get(key)
            if isinstance(value, str) and value.lower() in FAILED_VALUES:
                return True
        nested = details.get("cloudtrail")
        if isinstance(nested, dict) and nested.get("errorCode"):
            return True
    return False


AMOUNT_KEYS = ("amount", "total", "rows", "records", "count", "size_kb", "size", "bytes",
               "quantity", "value", "bytestransferredout")
COUNTRY_KEYS = ("country", "sourcecountry", "country_code", "countrycode")
ASN_KEYS = frozenset(("asn", "asnumber", "as_number", "autonomous_system_number",
                      "autonomoussystemnumber"))
_ASN = re.compile(r"(?:AS)?\s*(\d{1,10})", re.I)


_DETAIL_KEYS = {**dict.fromkeys(AMOUNT_KEYS, 1), **dict.fromkeys(ASN_KEYS, 2),
                **dict.fromkeys(COUNTRY_KEYS, 3)}


def _amount_value(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return math.log10(1.0 + abs(value))
    return None


def _asn_value(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"AS{value}" if 0 < value < 2 ** 32 else None
    if isinstance(value, str):
        m = _ASN.fullmatch(value.strip())
        if m and 0 < int(m.group(1)) < 2 ** 32:
            return f"AS{int(m.group(1))}"
    return None


def details_traits(details: object) -> tuple[float | None, str | None, str | None]:
    """``(amount_of, asn_of, country_of)`` of an event's details, in one pass over them
    (this runs for every event)."""
    if not isinstance(details, dict) or not details:
        return None, None, None
    amount = asn = country = geo_country = None
    kind_of = _DETAIL_KEYS.get
    scopes = [(details, True, False)]  # (scope, top level, under "geo"): nested ones after
    for scope, top, geo in scopes:
        for key, value in scope.items():
            if top and isinstance(value, dict):
                scopes.append((value, False, key == "geo"))
                continue
            kind = kind_of(key.lower())
            if kind is None:
                continue
            if kind == 1:
                m = _amount_value(value)
                if m is not None and (amount is None or m > amount):
                    amount = m
            elif kind == 2:
                if asn is None:
                    asn = _asn_value(value)
            elif isinstance(value, str) and value:
                if top and country is None:
                    country = value[:64].upper()
                elif geo and geo_country is None:
                    geo_country = value[:64].upper()
    return amount, asn, geo_country or country


def amount_of(details: object) -> float | None:
    """log10(1 + the largest amount-like number) in an event's details (top level and one
    level down), or None."""
    return details_traits(details)[0]


def asn_of(details: object) -> str | None:
    """The autonomous system an event's details name (``asn``, ``asNumber``, ``as_number``
    …, top level first, then one level down; as ``AS7018``, ``7018`` or 7018) as
    ``AS7018``, or None."""
    return details_traits(details)[1]


def country_of(details: object) -> str | None:
    """The country an event's details name (``geo.country`` first, then ``country`` …
    at the top level), or None."""
    return details_traits(details)[2]


def privileged(event_type: str) -> bool:
    """Whether an event type changes permissions or credentials or touches security
    controls."""
    return bool(PERMISSION.search(event_type) or SECURITY.search(event_type))


_log2 = math.log2


def _rarity(pair_count: float, total: float) -> float:
    # (counts go below 0 only when re-scoring takes out an event the profile has since
    # forgotten: pruned with its actor)
    return -_log2((max(0.0, pair_count) + 0.5) / (max(0.0, total) + 1.0))


def _actor_rarity(pair_count: float, actor_total: float, tenant_count: float,
                  tenant_total: float) -> float:
    """How rare a value is for an actor, shrunk towards how common it is in the tenant:
    ``-log2((times the actor did it + K·p) / (actor's events + K))`` with ``p`` the value's
    smoothed share of the tenant's events. An actor nobody knows yet gets the tenant-wide
    rarity (a newcomer doing common things is not unusual; doing something the tenant
    never does is); a long-known actor's own habits dominate."""
    # (counts go below 0 only when re-scoring takes an event's own contribution out)
    if tenant_count < 0:
        tenant_count = 0
    if tenant_total < 0:
        tenant_total = 0
    if pair_count < 0:
        pair_count = 0
    if actor_total < 0:
        actor_total = 0
    p = (tenant_count + 0.5) / (tenant_total + 1.0)
    return -_log2((pair_count + PRIOR * p) / (actor_total + PRIOR))


def _value_rarity(pair_count: float, actor_total: float, seen: float,
                  kind: list[int] | None, me: int = 0) -> float:
    """``_actor_rarity`` for a value of a kind (entity type, address, network, user agent,
    country), with the tenant-wide share of a value the tenant has never seen taken as how
    often it meets new values of that kind (Good–Turing: the values seen once over the
    events), not as half an event: in a trail where people sign in from many addresses a
    new address is common, in one that only ever sees two it is not. ``me`` takes the
    event's own contribution out (re-scoring)."""
    pair_count = max(0.0, pair_count)
    actor_total = max(0.0, actor_total)
    if kind is None:
        p = 0.5
    else:
        events, once = kind[0] - me, kind[1]
        n = seen - me
        if me and seen == 1:
            once -= 1
        elif me and seen == 2:
            once += 1
        events, once = max(0, events), max(0, once)
        p = n / (events + 1.0) if n > 0 else (once + 0.5) / (events + 1.0)
    return -_log2((pair_count + PRIOR * p) / (actor_total + PRIOR))


class Profile:
    """A tenant's behaviour so far (see the module docstring). ``through_seq`` is the last
    event folded in."""

    VERSION = 4
    # versions from_bytes accepts: version 2 lacks first times (see below), versions 2 and
    # 3 the last use of an actor's values (dated from the next pruning, see ``prune``)
    READS = (2, 3, 4)

    def __init__(self, zone: str = "UTC") -> None:
        # the tenant's time zone (IANA name): hours of day and days of week are its wall
        # clock's; set by whoever loads the profile (a change applies from the next event)
        self.zone = zone
        self.through_seq = 0
        self.total = 0
        self.types: dict[str, int] = {}
        # actor -> [events, first_ts, last_ts, hours[24], active_hours, last_hour_bucket,
        #           recent [[ts, flags], ...] within the last WINDOW of the actor's newest,
        #           last seen, the last seen before that, the recent list's counts
        #           [events, exports, deletions, permission changes, failures, new habits]]
        # (version 2 profiles: counts without new habits, appended when the actor is next
        # seen; their (actor, event type) and (actor, agent) first times are unknown and
        # read as the actor's first event, an upper bound of the habit's age)
        # event type -> [amounts seen, their mean, sum of squared deviations] (log10 scale)
        self.amounts: dict[str, list] = {}
        # "kind\x1fvalue" -> events of the tenant with that entity type, address, network,
        # user agent or country
        self.seen: dict[str, int] = {}
        # kind -> [events with a value of that kind, values seen exactly once]: how often
        # the tenant meets a value it has never seen (derived from ``seen``, not stored)
        self.kinds: dict[str, list[int]] = {}
        self.actors: dict[str, list] = {}
        # "kind\x1factor\x1fvalue" -> count; kind "t" (event type) keeps
        # [count, last_ts, first_ts] (version 2: [count, last_ts])
        self.pairs: dict[str, object] = {}
        # "u\x1factor\x1fuser agent" -> the first time the actor used that agent
        self.firsts: dict[str, float] = {}
        # "kind\x1factor\x1fvalue" (entity type, address, network, user agent, country) ->
        # the last time the actor used it (for pruning)
        self.last: dict[str, float] = {}
        self.started: float | None = None  # the tenant's first event's time
        self.newest: float | None = None  # the newest event's time
        self.pruned: float | None = None  # the newest event's time at the last pruning

    # --- persistence --------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return zlib.compress(orjson.dumps({
            "v": self.VERSION, "through_seq": self.through_seq, "total": self.total,
            "types": self.types, "actors": self.actors, "pairs": self.pairs,
            "amounts": self.amounts, "seen": self.seen, "firsts": self.firsts, "last": self.last,
            "started": self.started, "newest": self.newest, "pruned": self.pruned}), 3)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Profile:
        data = orjson.loads(zlib.decompress(blob))
        if data.get("v") not in cls.READS:
            raise ValueError(f"profile version {data.get('v')} is not one of {cls.READS}")
        p = cls()
        p.through_seq = int(data["through_seq"])
        p.total = int(data["total"])
        p.types = data["types"]
        p.actors = data["actors"]
        p.pairs = data["pairs"]
        p.amounts = data["amounts"]
        p.seen = data["seen"]
        p.count_kinds()
        p.firsts = data.get("firsts", {})
        p.last = data.get("last", {})
        p.started = data.get("started")
        p.newest = data.get("newest")
        p.pruned = data.get("pruned")
        if p.started is None and p.actors:  # (version 2: the first actor's first event)
            p.started = min(a[1] for a in p.actors.values())
        if p.newest is None and p.actors:
            p.newest = max(a[2] for a in p.actors.values())
        return p

    def count_kinds(self) -> None:
        """Rebuild ``kinds`` from ``seen``."""
        kinds: dict[str, list[int]] = {}
        for key, n in self.seen.items():
            st = kinds.get(key[0])
            if st is None:
                st = kinds[key[0]] = [0, 0]
            st[0] += n
            if n == 1:
                st[1] += 1
        self.kinds = kinds

    # --- reading ------------------------------------------------------------------------
    def _count(self, kind: str, actor: str, value: str | None) -> int:
        if value is None:
            return 0
        v = self.pairs.get(f"{kind}{SEP}{actor}{SEP}{value}")
        if v is None:
            return 0
        return v[0] if isinstance(v, list) else v

    def features(self, event: Event, ts: float | None = None, flags: int | None = None,
                 exclude_self: bool = False) -> np.ndarray:
        """The feature vector of ``event`` against what the profile has seen before it.
        With ``exclude_self`` the event is already folded in and its own contribution is
        left out of the counts (re-scoring)."""
        return np.array(self._describe(_context(event, ts, flags), exclude_self))

    def _describe(self, c: _Ctx, exclude_self: bool = False) -> list[float]:
        e, ts, flags = c.event, c.ts, c.flags
        me = 1 if exclude_self else 0
        local = local_seconds(ts, self.zone)
        hour = int(local // 3600) % 24
        weekday = (int(local // DAY) + 3) % 7  # 1970-01-01 was a Thursday
        actor = self.actors.get(e.actor_id)
        n_actor = max(0, actor[0] - me) if actor else 0
        x = [0.0] * N_FEATURES
        x[0], x[1] = HOUR_SIN[hour], HOUR_COS[hour]
        x[2], x[3] = DAY_SIN[weekday], DAY_COS[weekday]
        # the actor's last hour: counts kept with the recent list, older entries taken off
        recent_n = exports = deletions = perms = failures = news = 0
        etype = e.event_type
        pair = self.pairs.get(c.type_key)
        n_pair = (pair[0] - me) if pair else 0
        # the habit's age: since the actor first did this type (profiles written before
        # first times were kept: since the actor's first event, an upper bound)
        first = ts if n_pair <= 0 else (pair[2] if len(pair) > 2 else actor[1])
        since = self.started if self.started is not None else ts
        is_new = 1 if ts - first < NEW_FOR and first - since >= SETTLED else 0
        k = c.agent_key
        if not is_new and k is not None:
            first = ts if self.pairs.get(k, 0) - me <= 0 else self.firsts.get(k, actor[1])
            is_new = 1 if ts - first < NEW_FOR and first - since >= SETTLED else 0
        if actor:
            recent = actor[6]
            if ts >= actor[2] and not exclude_self:
                counts = actor[9]
                recent_n, exports, deletions, perms, failures = counts[:5]
                news = counts[5] if len(counts) > 5 else 0
                cutoff = ts - WINDOW
                for rts, rflags in recent:
                    if rts > cutoff:
                        break
                    recent_n -= 1
                    exports -= rflags & F_EXPORT and 1
                    deletions -= rflags & F_DELETE and 1
                    perms -= rflags & F_PERMISSION and 1
                    failures -= rflags & F_FAILED and 1
                    news -= rflags & F_NEW and 1
            else:  # an event older than the actor's newest, or re-scoring: count it out
                for rts, rflags in recent:
                    if ts - WINDOW < rts <= ts:
                        recent_n += 1
                        exports += rflags & F_EXPORT and 1
                        deletions += rflags & F_DELETE and 1
                        perms += rflags & F_PERMISSION and 1
                        failures += rflags & F_FAILED and 1
                        news += rflags & F_NEW and 1
                if exclude_self:  # the event itself is among the recent ones
                    recent_n -= 1
                    exports -= flags & F_EXPORT and 1
                    deletions -= flags & F_DELETE and 1
                    perms -= flags & F_PERMISSION and 1
                    failures -= flags & F_FAILED and 1
                    news -= is_new  # (as it was when it was folded in)
            if n_actor >= KNOWN_AFTER:
                hours = actor[3]
                need = USUAL_SHARE * n_actor
                # the nearest usual hour, searched outwards from the event's own (usually
                # a usual one itself)
                best = 12
                if hours[hour] - me >= need:
                    best = 0
                else:
                    for d in range(1, 12):
                        if hours[(hour + d) % 24] >= need or hours[(hour - d) % 24] >= need:
                            best = d
                            break
                x[4] = best
        # (re-scoring: the event may have left the actor's recent list; never below itself)
        recent_n = max(0, recent_n) + 1
        exports = max(0, exports) + (flags & F_EXPORT and 1)
        deletions = max(0, deletions) + (flags & F_DELETE and 1)
        perms = max(0, perms) + (flags & F_PERMISSION and 1)
        failures = max(0, failures) + (flags & F_FAILED and 1)
        news = max(0, news) + is_new
        x[5] = recent_n
        if actor and n_actor >= KNOWN_AFTER:
            norm = max(1.0, n_actor / max(1, actor[4]))
            x[6] = math.log2(recent_n / norm)
        x[7] = math.log10(1 + n_actor)
        total = self.total - me
        if n_actor == 0:
            x[8] = math.log10(1 + max(0, total))
        type_count = self.types.get(etype, 0) - me
        x[9] = _actor_rarity(n_pair, n_actor, type_count, total)
        pairs, seen, kinds = self.pairs, self.seen, self.kinds
        if me:
            for col, key, seen_key in c.keys:
                x[col] = _value_rarity(pairs.get(key, 0) - me, n_actor,
                                       seen.get(seen_key, 0), kinds.get(seen_key[0]), me)
        else:  # _value_rarity inlined (no counts to take out): this runs for every event
            spread = n_actor + PRIOR
            for col, key, seen_key in c.keys:
                n = seen.get(seen_key, 0)
                st = kinds.get(seen_key[0])
                if st is None:
                    p = 0.5
                elif n:
                    p = n / (st[0] + 1.0)
                else:
                    p = (st[1] + 0.5) / (st[0] + 1.0)
                x[col] = -_log2((pairs.get(key, 0) + PRIOR * p) / spread)
        x[14] = _rarity(type_count, total)
        if n_pair > 0 and pair[1] is not None and not exclude_self:
            x[15] = min(MAX_DAYS, max(0.0, ts - pair[1]) / DAY)
        elif actor and n_actor > 0:
            x[15] = min(MAX_DAYS, max(0.0, ts - actor[1]) / DAY)
        x[16], x[17], x[18] = exports, deletions, perms
        repeated = failures - 1 if failures > 1 else 0
        x[19] = repeated / max(3, recent_n)
        x[20] = repeated
        x[21] = 1.0 if c.privileged else 0.0
        x[22] = SEVERITY.get(e.severity.lower(), 1)
        if actor and n_actor > 0:
            last_seen = actor[7] if not exclude_self else actor[8]
            if last_seen is not None:
                x[23] = min(MAX_DAYS, max(0.0, ts - last_seen) / DAY)
        amount = c.amount
        stats = self.amounts.get(etype)
        if amount is not None and stats is not None:
            n, mean, m2 = stats[:3]
            std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
            folded_in = amount <= mean + AMOUNT_CLIP * max(std, 0.1) or n < MIN_AMOUNTS
            if exclude_self and n > 1 and folded_in:  # take its own amount back out
                old_mean = (mean * n - amount) / (n - 1)
                m2 = max(0.0, m2 - (amount - old_mean) * (amount - mean))
                n, mean = n - 1, old_mean
            if n >= MIN_AMOUNTS:
                x[25] = max(-10.0, min(10.0, (amount - mean) / amount_spread(n, m2)))
        novelty = 0.0
        for i in NOVELTY_COLUMNS:
            if x[i] > 1.0:
                novelty += x[i] - 1.0
        x[26] = novelty
        if c.privileged:
            x[27] = max(0.0, 2.0 - x[7])
        x[28] = x[14] + x[9]
        x[29] = news
        x[30] = news / max(3, recent_n)
        return x

    # --- pruning ------------------------------------------------------------------------
    def prune(self, now: float | None = None) -> int:
        """Forget what has not been seen for ``FORGET_AFTER`` before ``now`` (the newest
        event by default): actors last seen before then, with everything kept about them
        (their events leave the tenant-wide counts too, so rarities stay consistent with
        what is kept); (actor, event type) habits last exercised before then (done again,
        they are new again); and an actor's entity types, addresses, networks, user agents
        and countries last used before then (they leave the tenant-wide counts of those
        values, so a value nobody has used for that long is forgotten by the tenant too).
        Values kept by a profile written before their last use was (version 3 and older)
        are dated from the first pruning that meets them. Returns the entries removed."""
        now = self.newest if now is None else now
        if now is None:
            return 0
        cutoff = now - FORGET_AFTER
        self.pruned = now
        gone = {a for a, v in self.actors.items() if (v[7] if v[7] is not None else v[2]) < cutoff}
        last = self.last
        stale = []
        for k, v in self.pairs.items():
            if isinstance(v, list):  # (actor, event type): [count, last time, first time]
                if (v[1] is not None and v[1] < cutoff) or k.split(SEP, 2)[1] in gone:
                    stale.append(k)
                continue
            when = last.get(k)
            if gone and k.split(SEP, 2)[1] in gone:
                stale.append(k)
            elif when is None:  # kept before last uses were: its clock starts now
                last[k] = now
            elif when < cutoff:
                stale.append(k)
        removed = 0
        for key in stale:
            kind, actor, value = key.split(SEP, 2)
            v = self.pairs.pop(key)
            self.firsts.pop(key, None)
            last.pop(key, None)
            removed += 1
            count = v[0] if isinstance(v, list) else v
            if kind == "t":
                if actor not in gone:  # a forgotten habit: the actor's own counts stay
                    continue
                left = self.types.get(value, 0) - count
                if left > 0:
                    self.types[value] = left
                else:
                    self.types.pop(value, None)
            else:
                seen_key = f"{kind}{SEP}{value}"
                left = self.seen.get(seen_key, 0) - count
                if left > 0:
                    self.seen[seen_key] = left
                else:
                    self.seen.pop(seen_key, None)
        for actor in gone:
            self.total = max(0, self.total - self.actors.pop(actor)[0])
            removed += 1
        self.count_kinds()
        return removed

    # --- writing ------------------------------------------------------------------------
    def _observe(self, c: _Ctx) -> None:
        e, ts, flags = c.event, c.ts, c.flags
        self.total += 1
        if self.started is None or ts < self.started:
            self.started = ts
        if self.newest is None or ts > self.newest:
            self.newest = ts
        if e.seq > self.through_seq:
            self.through_seq = e.seq
        etype, who = e.event_type, e.actor_id
        self.types[etype] = self.types.get(etype, 0) + 1
        actor = self.actors.get(who)
        if actor is None:
            actor = self.actors[who] = [0, ts, ts, [0] * 24, 0, None, [], None, None,
                                        [0, 0, 0, 0, 0, 0]]
        actor[0] += 1
        actor[8] = actor[7]  # the previous "last seen", for re-scoring this event
        actor[7] = ts if actor[7] is None else max(actor[7], ts)
        actor[1] = min(actor[1], ts)
        actor[2] = max(actor[2], ts)
        actor[3][int(local_seconds(ts, self.zone) // 3600) % 24] += 1
        bucket = int(ts // 3600)
        if bucket != actor[5]:
            actor[4] += 1
            actor[5] = bucket
        key = c.type_key
        pair = self.pairs.get(key)
        if pair is None:
            pair = self.pairs[key] = [0, ts, ts]
        elif len(pair) < 3:  # kept before first times were: the actor's first event
            pair.append(actor[1])
        pair[0] += 1
        pair[1] = ts if pair[1] is None else max(pair[1], ts)
        pair[2] = min(pair[2], ts)
        since = self.started
        if ts - pair[2] < NEW_FOR and pair[2] - since >= SETTLED:
            flags |= F_NEW
        elif c.agent_key is not None:
            k = c.agent_key
            first = ts if k not in self.pairs else self.firsts.get(k, actor[1])
            if ts - first < NEW_FOR and first - since >= SETTLED:
                flags |= F_NEW
        recent, counts = actor[6], actor[9]
        if len(counts) < 6:
            counts.append(sum(1 for _, rflags in recent if rflags & F_NEW))
        recent.append([ts, flags])
        counts[5] += flags & F_NEW and 1
        counts[0] += 1
        counts[1] += flags & F_EXPORT and 1
        counts[2] += flags & F_DELETE and 1
        counts[3] += flags & F_PERMISSION and 1
        counts[4] += flags & F_FAILED and 1
        cutoff = actor[2] - WINDOW
        drop = 0
        for rts, rflags in recent:  # entries leave in arrival order once out of the window
            if rts > cutoff and len(recent) - drop <= RECENT_MAX:
                break
            drop += 1
            counts[0] -= 1
            counts[1] -= rflags & F_EXPORT and 1
            counts[2] -= rflags & F_DELETE and 1
            counts[3] -= rflags & F_PERMISSION and 1
            counts[4] -= rflags & F_FAILED and 1
            counts[5] -= rflags & F_NEW and 1
        if drop:
            del recent[:drop]
        amount = c.amount
        if amount is not None:  # Welford's running mean and variance per event type
            n, mean, m2, *rest = self.amounts.get(etype, (0, 0.0, 0.0))
            held = rest[0] if rest else 0  # extreme amounts kept out of the norm so far
            if n >= MIN_AMOUNTS:
                std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
                if amount > mean + AMOUNT_CLIP * max(std, 0.1) and held < n * HOLD_SHARE:
                    # an extreme amount stays unusual: it does not join the norm, unless
                    # extremes become a real share of the type (the norm has moved)
                    self.amounts[etype] = [n, mean, m2, held + 1]
                    amount = None
            if amount is not None:
                n += 1
                delta = amount - mean
                mean += delta / n
                m2 += delta * (amount - mean)
                self.amounts[etype] = [n, mean, m2, held]
        pairs, seen, kinds, last = self.pairs, self.seen, self.kinds, self.last
        for col, k, seen_key in c.keys:
            n = pairs.get(k, 0)
            pairs[k] = n + 1
            if n == 0 and col == AGENT_COLUMN:
                self.firsts[k] = ts
            when = last.get(k)
            if when is None or ts > when:
                last[k] = ts
            n = seen.get(seen_key, 0)
            seen[seen_key] = n + 1
            st = kinds.get(seen_key[0])
            if st is None:
                st = kinds[seen_key[0]] = [0, 0]
            st[0] += 1
            if n == 0:
                st[1] += 1
            elif n == 1:
                st[1] -= 1


class _Ctx(NamedTuple):
    """What an event's features need, computed once per event."""

    event: Event
    ts: float
    flags: int
    network: str | None
    agent: str | None
    country: str | None
    amount: float | None
    privileged: bool
    # the profile's keys: (actor, event type), (actor, user agent) or None, and
    # (column, (actor, value) key, tenant-wide value key) per entity type, address,
    # network, user agent and country the event has
    type_key: str
    agent_key: str | None
    keys: list[tuple[int, str, str]]


@lru_cache(maxsize=4096)
def _type_traits(event_type: str) -> tuple[int, bool]:
    flags = ((F_EXPORT if EXPORT.search(event_type) else 0)
             | (F_DELETE if DELETE.search(event_type) else 0)
             | (F_PERMISSION if PERMISSION.search(event_type) else 0))
    return flags, privileged(event_type)


def _context(e: Event, ts: float | None = None, flags: int | None = None) -> _Ctx:
    type_flags, is_privileged = _type_traits(e.event_type)
    if flags is None:
        flags = type_flags | (F_FAILED if failed(e) else 0)
    amount, asn, country = details_traits(e.action_details)
    # the network: the autonomous system when the details name one, else the prefix
    network = asn or network_of(e.ip_address)
    agent = e.user_agent[:200] if e.user_agent else None
    who = e.actor_id
    keys = []  # (spelled out: this runs for every event)
    if e.entity_type is not None:
        keys.append((10, f"e{SEP}{who}{SEP}{e.entity_type}", f"e{SEP}{e.entity_type}"))
    if e.ip_address is not None:
        keys.append((11, f"i{SEP}{who}{SEP}{e.ip_address}", f"i{SEP}{e.ip_address}"))
    if network is not None:
        keys.append((12, f"n{SEP}{who}{SEP}{network}", f"n{SEP}{network}"))
    if agent is not None:
        keys.append((AGENT_COLUMN, f"u{SEP}{who}{SEP}{agent}", f"u{SEP}{agent}"))
    if country is not None:
        keys.append((24, f"c{SEP}{who}{SEP}{country}", f"c{SEP}{country}"))
    return _Ctx(e, parse_time(e.occurred_at) if ts is None else ts, flags, network, agent,
                country, amount, is_privileged,
                f"t{SEP}{who}{SEP}{e.event_type}",
                None if agent is None else f"u{SEP}{who}{SEP}{agent}", keys)


def featurize(events: Iterable[Event], profile: Profile | None = None
              ) -> tuple[np.ndarray, Profile]:
    """Walk ``events`` in the order given: each one's features against the profile so far,
    then fold it in. Events the profile already holds (seq at or below its
    ``through_seq``) are described with their own contribution left out and not folded in
    again. Returns the feature matrix (one row per event) and the profile."""
    profile = profile if profile is not None else Profile()
    rows = []
    for e in events:
        c = _context(e)
        if e.seq and e.seq <= profile.through_seq:
            rows.append(profile._describe(c, exclude_self=True))
        else:
            rows.append(profile._describe(c))
            profile._observe(c)
            if profile.pruned is None:
                profile.pruned = profile.newest
            elif profile.newest - profile.pruned >= PRUNE_EVERY:
                profile.prune()
    if not rows:
        return np.zeros((0, N_FEATURES)), profile
    return np.array(rows, dtype=np.float64), profile


def from_logged(features: dict | None) -> np.ndarray | None:
    """A feature row as ``as_dict`` logged it, or None when it was logged for another
    feature list or feature set (``FEATURE_SET``)."""
    if (not features or features.get(FEATURE_SET_KEY) != FEATURE_SET
            or len(features) != N_FEATURES + 1 or not _NAME_SET <= features.keys()):
        return None
    return np.array([float(features[name]) for name in FEATURE_NAMES])


def as_dict(row: Sequence[float]) -> dict[str, float]:
    """A feature row by name, rounded for the prediction log, with the feature set it
    belongs to (``feature_set``)."""
    out: dict[str, float] = {name: round(float(v), 4)
                             for name, v in zip(FEATURE_NAMES, row, strict=True)}
    out[FEATURE_SET_KEY] = FEATURE_SET
    return out
