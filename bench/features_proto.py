"""PROTOTYPE for measuring only (bench/eval_anomaly.py --prototype): a copy of
trailseal_plugins/anomaly/features.py with proposed changes, switched on by the environment
variable TS_PROTO (comma-separated; unset means all):

- ``smooth``: the per-actor rarities (event type, entity type, address, network, user agent)
  are smoothed towards the tenant's own frequency of the value instead of towards "½ of a
  new actor's events": ``-log2((pair + K·p_tenant) / (actor events + K))``, K = 4. A new actor
  doing what everyone does scores low, a new actor with a user agent, network or action the
  tenant has never seen scores high (today a new actor scores about 1 bit on all of them).
- ``noclock``: drop the four raw UTC clock columns (hour/weekday sine and cosine); the
  actor-relative ``hours_from_usual`` stays.

Nothing in the product imports this file.

Behavioural features of an event, computed against the tenant's own history.

The history is a ``Profile``: counters per actor, per (actor, event type), (actor, entity
type), (actor, source address), (actor, network), (actor, user agent), per event type, and
each actor's events of the last hour. It is updated incrementally (``observe``), one event
at a time, and saved between runs, so scoring a new event never re-reads the tenant's past.

``Profile.features(event)`` describes an event against what the profile has seen *before*
it; ``featurize`` walks a stream in order (features, then observe). Every feature has a
name, a label and a meaning (``FEATURES``; docs/user-guide.md, "Anomaly features").
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

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
    Feature("hour_sin", "Hour of day (sine)", "sin(2π·hour/24) of the event's UTC time"),
    Feature("hour_cos", "Hour of day (cosine)", "cos(2π·hour/24): with the sine, the hour on "
            "a circle, so 23:00 and 01:00 are close"),
    Feature("weekday_sin", "Day of week (sine)", "sin(2π·weekday/7), Monday = 0"),
    Feature("weekday_cos", "Day of week (cosine)", "cos(2π·weekday/7)"),
    Feature("hours_from_usual", "Hours from the actor's usual hours",
            "circular distance (0–12 h) from the event's hour to the nearest hour holding at "
            "least 5 % of the actor's past events; 0 until the actor has 10 events"),
    Feature("actor_events_1h", "Actor's events in the last hour",
            "events by the same actor in the hour up to this one, this one included"),
    Feature("actor_rate_ratio", "Rate against the actor's norm",
            "log2 of the last hour's events over the actor's usual events per active hour; "
            "0 until the actor has 10 events"),
    Feature("actor_history", "Actor's past events", "log10(1 + events the actor did before)"),
    Feature("new_action_for_actor", "Rarity of this event type for the actor",
            "-log2((times the actor did this event type + ½) / (actor's events + 1)): about "
            "1 for a new actor, high for a first-time action of a long-known actor"),
    Feature("new_entity_type_for_actor", "Rarity of this entity type for the actor",
            "the same measure for (actor, entity type)"),
    Feature("new_source_ip_for_actor", "Rarity of this source address for the actor",
            "the same measure for (actor, source IP); 0 when the event has no address"),
    Feature("new_network_for_actor", "Rarity of this network for the actor",
            "the same measure for (actor, network: /24 for IPv4, /48 for IPv6)"),
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
            "share of the actor's events in the last hour that failed or were denied"),
    Feature("failed", "Failed or denied", "1 when this event failed or was denied"),
    Feature("privileged", "Privilege-sensitive action",
            "1 for event types that change permissions or credentials or touch security "
            "controls (audit logging, keys, secrets)"),
    Feature("severity_level", "Event severity", "0 info, 1 warning/low, 2 error/high, "
            "3 critical, as the event states it"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

EXPORT = re.compile(r"export|download|dump|backup|getobject|copyobject|copysnapshot|"
                    r"snapshotattribute|imageattribute|createexporttask|sharesnapshot", re.I)
DELETE = re.compile(r"delete|remove|destroy|terminate|purge|drop|wipe|erase", re.I)
PERMISSION = re.compile(r"permission|role|polic|grant|revoke|privilege|acl|attach|detach|"
                        r"accesskey|loginprofile|password|credential|mfa|membership|"
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
F_EXPORT, F_DELETE, F_PERMISSION, F_FAILED = 1, 2, 4, 8
SEP = "\x1f"
PROTO = set((os.environ.get("TS_PROTO") or "smooth,noclock").split(","))
K = 4.0
CLOCK = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
KEEP = [i for i, n in enumerate(FEATURE_NAMES) if "noclock" not in PROTO or n not in CLOCK]


def parse_time(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def hour_of(ts: float) -> int:
    """The UTC hour (0–23) of a time in seconds since the epoch."""
    return int(ts // 3600) % 24


def network_of(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def failed(event: Event) -> bool:
    """Whether an event failed or was denied: its tags, its type, or its details say so."""
    if FAILED_TAGS.intersection(t.lower() for t in event.tags):
        return True
    if FAILED_WORDS.search(event.event_type):
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


def flags_of(event: Event) -> int:
    t = event.event_type
    return ((F_EXPORT if EXPORT.search(t) else 0) | (F_DELETE if DELETE.search(t) else 0)
            | (F_PERMISSION if PERMISSION.search(t) else 0)
            | (F_FAILED if failed(event) else 0))


def privileged(event_type: str) -> bool:
    return bool(PERMISSION.search(event_type) or SECURITY.search(event_type))


def _rarity(pair_count: float, total: float) -> float:
    return -math.log2((pair_count + 0.5) / (total + 1.0))


def _hour_distance(a: int, b: int) -> int:
    d = abs(a - b) % 24
    return min(d, 24 - d)


class Profile:
    """A tenant's behaviour so far (see the module docstring). ``through_seq`` is the last
    event folded in."""

    VERSION = 1

    def __init__(self) -> None:
        self.through_seq = 0
        self.total = 0
        self.types: dict[str, int] = {}
        # actor -> [events, first_ts, last_ts, hours[24], active_hours, last_hour_bucket,
        #           recent [[ts, flags], ...] within the last WINDOW of the actor's newest]
        self.actors: dict[str, list] = {}
        # "kind\x1factor\x1fvalue" -> count; kind "t" (event type) keeps [count, last_ts]
        self.pairs: dict[str, object] = {}

    # --- persistence --------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return zlib.compress(orjson.dumps({
            "v": self.VERSION, "through_seq": self.through_seq, "total": self.total,
            "types": self.types, "actors": self.actors, "pairs": self.pairs}), 3)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Profile:
        data = orjson.loads(zlib.decompress(blob))
        if data.get("v") != cls.VERSION:
            raise ValueError(f"profile version {data.get('v')} is not {cls.VERSION}")
        p = cls()
        p.through_seq = int(data["through_seq"])
        p.total = int(data["total"])
        p.types = data["types"]
        p.actors = data["actors"]
        p.pairs = data["pairs"]
        return p

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
        ts = parse_time(event.occurred_at) if ts is None else ts
        flags = flags_of(event) if flags is None else flags
        me = 1 if exclude_self else 0
        hour, weekday = hour_of(ts), (int(ts // DAY) + 3) % 7  # 1970-01-01 was a Thursday
        actor = self.actors.get(event.actor_id)
        n_actor = (actor[0] - me) if actor else 0
        x = np.zeros(len(FEATURES), dtype=np.float64)
        x[0] = math.sin(2 * math.pi * hour / 24)
        x[1] = math.cos(2 * math.pi * hour / 24)
        x[2] = math.sin(2 * math.pi * weekday / 7)
        x[3] = math.cos(2 * math.pi * weekday / 7)
        recent_n = exports = deletions = perms = failures = 0
        if actor and n_actor >= KNOWN_AFTER:
            hours = list(actor[3])
            if exclude_self:
                hours[hour] -= 1
            usual = [h for h in range(24) if hours[h] >= USUAL_SHARE * n_actor]
            x[4] = min((_hour_distance(hour, h) for h in usual), default=12)
        if actor:
            for rts, rflags in actor[6]:
                if ts - WINDOW < rts <= ts:
                    recent_n += 1
                    exports += bool(rflags & F_EXPORT)
                    deletions += bool(rflags & F_DELETE)
                    perms += bool(rflags & F_PERMISSION)
                    failures += bool(rflags & F_FAILED)
            if exclude_self:  # the event itself is among the recent ones
                recent_n -= 1
                exports -= bool(flags & F_EXPORT)
                deletions -= bool(flags & F_DELETE)
                perms -= bool(flags & F_PERMISSION)
                failures -= bool(flags & F_FAILED)
        recent_n += 1
        exports += bool(flags & F_EXPORT)
        deletions += bool(flags & F_DELETE)
        perms += bool(flags & F_PERMISSION)
        failures += bool(flags & F_FAILED)
        x[5] = recent_n
        if actor and n_actor >= KNOWN_AFTER:
            norm = max(1.0, n_actor / max(1, actor[4]))
            x[6] = math.log2(recent_n / norm)
        x[7] = math.log10(1 + n_actor)
        pair = self.pairs.get(f"t{SEP}{event.actor_id}{SEP}{event.event_type}")
        n_pair = (pair[0] - me) if pair else 0
        smooth = "smooth" in PROTO
        total = self.total - me

        def rare(kind: str, value, pair_count: float) -> float:
            if not smooth:
                return _rarity(pair_count, n_actor)
            tenant = (self.types.get(value, 0) if kind == "t"
                      else self._count(kind, "*", value)) - me
            p = (tenant + 0.5) / (total + 1.0)
            return -math.log2((pair_count + K * p) / (n_actor + K))

        x[8] = rare("t", event.event_type, n_pair)
        x[9] = rare("e", event.entity_type,
                    self._count("e", event.actor_id, event.entity_type) - me)
        if event.ip_address:
            x[10] = rare("i", event.ip_address,
                         self._count("i", event.actor_id, event.ip_address) - me)
            net = network_of(event.ip_address)
            x[11] = rare("n", net, self._count("n", event.actor_id, net) - me)
        if event.user_agent:
            x[12] = rare("u", event.user_agent[:200],
                         self._count("u", event.actor_id, event.user_agent[:200]) - me)
        x[13] = _rarity(self.types.get(event.event_type, 0) - me, self.total - me)
        if n_pair > 0 and pair[1] is not None and not exclude_self:
            x[14] = min(MAX_DAYS, max(0.0, ts - pair[1]) / DAY)
        elif actor and n_actor > 0:
            x[14] = min(MAX_DAYS, max(0.0, ts - actor[1]) / DAY)
        x[15], x[16], x[17] = exports, deletions, perms
        x[18] = failures / recent_n
        x[19] = 1.0 if flags & F_FAILED else 0.0
        x[20] = 1.0 if privileged(event.event_type) else 0.0
        x[21] = SEVERITY.get(event.severity.lower(), 1)
        return x

    # --- writing ------------------------------------------------------------------------
    def observe(self, event: Event, ts: float | None = None, flags: int | None = None) -> None:
        """Fold ``event`` into the profile."""
        ts = parse_time(event.occurred_at) if ts is None else ts
        flags = flags_of(event) if flags is None else flags
        self.total += 1
        self.through_seq = max(self.through_seq, event.seq)
        self.types[event.event_type] = self.types.get(event.event_type, 0) + 1
        actor = self.actors.get(event.actor_id)
        if actor is None:
            actor = self.actors[event.actor_id] = [0, ts, ts, [0] * 24, 0, None, []]
        actor[0] += 1
        actor[1] = min(actor[1], ts)
        actor[2] = max(actor[2], ts)
        actor[3][hour_of(ts)] += 1
        bucket = int(ts // 3600)
        if bucket != actor[5]:
            actor[4] += 1
            actor[5] = bucket
        recent = actor[6]
        recent.append([ts, flags])
        newest = actor[2]
        if len(recent) > 64 or recent[0][0] <= newest - WINDOW:
            actor[6] = [r for r in recent if r[0] > newest - WINDOW][-5000:]
        key = f"t{SEP}{event.actor_id}{SEP}{event.event_type}"
        pair = self.pairs.get(key)
        if pair is None:
            self.pairs[key] = [1, ts]
        else:
            pair[0] += 1
            pair[1] = ts if pair[1] is None else max(pair[1], ts)
        for kind, value in (("e", event.entity_type), ("i", event.ip_address),
                            ("n", network_of(event.ip_address)),
                            ("u", event.user_agent[:200] if event.user_agent else None)):
            if value is not None:
                for who in (event.actor_id, "*"):
                    k = f"{kind}{SEP}{who}{SEP}{value}"
                    self.pairs[k] = self.pairs.get(k, 0) + 1


def featurize(events: Iterable[Event], profile: Profile | None = None
              ) -> tuple[np.ndarray, Profile]:
    """Walk ``events`` in the order given: each one's features against the profile so far,
    then fold it in. Events the profile already holds (seq at or below its
    ``through_seq``) are described with their own contribution left out and not folded in
    again. Returns the feature matrix (one row per event) and the profile."""
    profile = profile if profile is not None else Profile()
    rows = []
    for e in events:
        ts = parse_time(e.occurred_at)
        flags = flags_of(e)
        if e.seq and e.seq <= profile.through_seq:
            rows.append(profile.features(e, ts, flags, exclude_self=True))
        else:
            rows.append(profile.features(e, ts, flags))
            profile.observe(e, ts, flags)
    if not rows:
        return np.zeros((0, len(KEEP))), profile
    return np.vstack(rows)[:, KEEP], profile


PRODUCT_FEATURE_NAMES = FEATURE_NAMES
FEATURE_NAMES = tuple(PRODUCT_FEATURE_NAMES[i] for i in KEEP)


def as_dict(row: Sequence[float]) -> dict[str, float]:
    """A feature row by name, rounded for the prediction log."""
    return {name: round(float(v), 4) for name, v in zip(FEATURE_NAMES, row, strict=True)}
