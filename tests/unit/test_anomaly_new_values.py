"""Rarity of values a tenant has never seen (feature set 2), the last use of an actor's
values (pruning), and the feature set carried by models and logged rows.

- A value the tenant has never seen is as rare as new values of its kind are in the
  tenant (its values seen once over its events with one), not half an event: a new address
  is ordinary where people sign in from ever new ones and rare where two are all there is.
- The counts behind it (``Profile.kinds``) are kept as events are folded in, and equal a
  recount from scratch after any stream, a save and load, and pruning.
- An active actor's addresses, networks, user agents, entity types and countries unused
  for ``FORGET_AFTER`` are forgotten, and leave the tenant-wide counts.
- Rows logged under another feature set are not reused.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.types import Event
from trailseal_plugins.anomaly.features import (
    FEATURE_NAMES,
    FEATURE_SET,
    FEATURE_SET_KEY,
    FORGET_AFTER,
    INDEX,
    NOVELTY,
    SEP,
    Profile,
    as_dict,
    featurize,
    from_logged,
)

EXAMPLES = settings(max_examples=100, deadline=None)
START = datetime(2026, 1, 5, 8, tzinfo=UTC)
IP = INDEX["new_source_ip_for_actor"]
NET = INDEX["new_network_for_actor"]


def _event(seq: int, when: datetime, actor: str = "ana@x", ip: str | None = "10.0.0.5",
           agent: str | None = "console", etype: str = "doc.viewed",
           entity: str = "doc") -> Event:
    return Event(id=f"e{seq}", tenant_id="t", seq=seq, occurred_at=when.isoformat(),
                 event_type=etype, actor_id=actor, actor_type="user", actor_role=None,
                 actor_department=None, entity_type=entity, entity_id=f"d{seq % 3}",
                 severity="info", source=None, tags=(), ip_address=ip, user_agent=agent,
                 action_details=None)


def _trail(address_of) -> list[Event]:
    """Ten people, 40 events each over 20 days; ``address_of(person, i)`` picks the
    address of their i-th event."""
    events = []
    for i in range(40):
        for p in range(10):
            events.append(_event(len(events) + 1, START + timedelta(hours=12 * i, minutes=p),
                                 f"p{p}@x", address_of(p, i)))
    return events


def test_a_new_address_is_ordinary_where_new_ones_are_common_and_rare_where_they_are_not():
    roaming = _trail(lambda p, i: f"203.{p}.{i}.1")  # a new address and network every time
    fixed = _trail(lambda p, i: "198.51.100.7" if p % 2 else "198.51.100.8")  # two, ever
    after = START + timedelta(days=21)
    probe = [_event(401, after, "p3@x", "192.0.2.99")]
    x_roaming, _ = featurize(probe, featurize(roaming)[1])
    x_fixed, _ = featurize(probe, featurize(fixed)[1])
    # the same actor history (40 events), the same never-seen address
    assert x_fixed[0, IP] - x_roaming[0, IP] > 4
    assert x_fixed[0, NET] > x_roaming[0, NET]
    # and the usual address of the fixed trail is not rare at all
    usual, _ = featurize([_event(401, after, "p3@x", "198.51.100.7")], featurize(fixed)[1])
    assert usual[0, IP] < 0.5 < x_roaming[0, IP]


ACTORS = st.sampled_from(("ana@x", "bo@x", "cy@x"))
ADDRESSES = st.sampled_from(("10.0.0.5", "10.0.1.9", "2001:db8:1::5", "198.51.100.2", None))
AGENTS = st.sampled_from(("console", "aws-cli/2", None))
ENTITIES = st.sampled_from(("doc", "user", "bucket"))
STEPS = st.lists(st.tuples(st.integers(0, 7200), ACTORS, ADDRESSES, AGENTS, ENTITIES),
                 min_size=1, max_size=60)


def _stream(steps, stretch: int = 1) -> list[Event]:
    """Events ``gap × stretch`` seconds apart: within a few days (no pruning) as drawn,
    weeks apart (prunings in between) with a stretch of 480."""
    events, t = [], START
    for i, (gap, actor, ip, agent, entity) in enumerate(steps):
        t += timedelta(seconds=gap * stretch)
        events.append(_event(i + 1, t, actor, ip, agent, entity=entity))
    return events


def _recount(profile: Profile) -> dict:
    again = Profile()
    again.seen = profile.seen
    again.count_kinds()
    return again.kinds


@EXAMPLES
@given(STEPS, st.integers(0, 59), st.sampled_from((1, 480)))
def test_new_value_counts_are_kept_exactly_through_saves_and_prunings(steps, cut, stretch):
    events = _stream(steps, stretch)
    cut = min(cut, len(events))
    _, profile = featurize(events[:cut])
    profile = Profile.from_bytes(profile.to_bytes())
    X, profile = featurize(events[cut:], profile)
    assert {k: v for k, v in profile.kinds.items() if v != [0, 0]} == _recount(profile)
    for kind, (events_with, once) in profile.kinds.items():
        values = [n for key, n in profile.seen.items() if key[0] == kind]
        assert events_with == sum(values) and once == sum(1 for n in values if n == 1)
    assert (X[:, [INDEX[n] for n in NOVELTY]] >= 0).all()


@EXAMPLES
@given(STEPS, st.sampled_from((1, 480)))
def test_rescoring_the_newest_event_gives_its_rarities_again(steps, stretch):
    events = _stream(steps, stretch)
    X, profile = featurize(events)
    again, _ = featurize(events[-1:], profile)  # already folded in: its own part left out
    columns = [INDEX[n] for n in NOVELTY]
    assert abs(again[0, columns] - X[-1, columns]).max() < 1e-9


def test_an_active_actors_abandoned_address_is_forgotten_and_new_again():
    events = []
    for d in range(30):  # ana works from the office and, for a month, from home too
        events.append(_event(len(events) + 1, START + timedelta(days=d), ip="10.0.0.5"))
        events.append(_event(len(events) + 1, START + timedelta(days=d, hours=8),
                             ip="198.51.100.2"))
    for d in range(30, 480):  # then from the office only
        events.append(_event(len(events) + 1, START + timedelta(days=d), ip="10.0.0.5"))
    X, profile = featurize(events)
    home = (f"i{SEP}ana@x{SEP}198.51.100.2", f"n{SEP}ana@x{SEP}198.51.100.0/24")
    assert not any(k in profile.pairs or k in profile.last for k in home)
    assert f"i{SEP}198.51.100.2" not in profile.seen  # nobody else used it: the tenant too
    assert profile.pairs[f"i{SEP}ana@x{SEP}10.0.0.5"] == 480  # the one in use stays
    assert profile.kinds == _recount(profile)
    back, _ = featurize([_event(len(events) + 1, START + timedelta(days=480, hours=8),
                                ip="198.51.100.2")], profile)
    month = X[59]  # her 30th evening at home, a month into the trail: her habit then
    assert back[0, IP] > month[IP] + 3


def _as_version_3(profile: Profile) -> bytes:
    data = orjson.loads(zlib.decompress(profile.to_bytes()))
    data["v"] = 3
    del data["last"]
    return zlib.compress(orjson.dumps(data), 3)


def test_version_3_profiles_date_their_values_from_the_next_pruning():
    events = [_event(i + 1, START + timedelta(days=i), ip=f"10.0.0.{i % 3 + 1}")
              for i in range(20)]
    _, profile = featurize(events)
    old = Profile.from_bytes(_as_version_3(profile))
    assert old.last == {} and old.kinds == profile.kinds
    keys = [k for k in old.pairs if k[0] == "i"]
    # ana carries on from another address, daily: the trail prunes itself every week
    later = [_event(21 + d, START + timedelta(days=20 + d), ip="10.0.0.9") for d in range(460)]
    first = old.newest + 7 * 86400  # the first pruning after the load dates them
    upto = [e for e in later if e.occurred_at < datetime.fromtimestamp(
        first + FORGET_AFTER - 86400, UTC).isoformat()]
    _, old = featurize(upto, old)
    assert all(k in old.pairs for k in keys)  # kept a full horizon from that pruning
    assert all(old.last[k] <= first for k in keys)
    _, old = featurize(later[len(upto):], old)
    assert not any(k in old.pairs for k in keys)  # unused since: forgotten
    assert f"i{SEP}ana@x{SEP}10.0.0.9" in old.pairs and old.kinds == _recount(old)


def test_logged_rows_carry_their_feature_set_and_others_are_not_reused():
    row = [float(i) / 7 for i in range(len(FEATURE_NAMES))]
    logged = as_dict(row)
    assert logged[FEATURE_SET_KEY] == FEATURE_SET
    assert list(from_logged(logged)) == [round(v, 4) for v in row]
    earlier = {k: v for k, v in logged.items() if k != FEATURE_SET_KEY}  # set 1 rows
    assert from_logged(earlier) is None
    assert from_logged({**logged, FEATURE_SET_KEY: FEATURE_SET - 1}) is None
    assert from_logged({**logged, "extra": 1.0}) is None
    assert from_logged({}) is None and from_logged(None) is None


def test_the_network_is_the_autonomous_system_when_the_details_name_one():
    from trailseal_plugins.anomaly.features import asn_of

    assert asn_of({"asn": "AS14061"}) == asn_of({"asn": 14061}) == "AS14061"
    assert asn_of({"securityContext": {"asNumber": 7018, "isp": "at&t"}}) == "AS7018"
    assert asn_of({"ipinfo": {"as_number": " 15169 "}}) == "AS15169"
    for nothing in (None, [], {}, {"asn": True}, {"asn": "ASX"}, {"asn": 0}, {"asn": -5},
                    {"asn": 2 ** 40}, {"a": {"b": {"asn": 1}}}, {"asn": 1.5}):
        assert asn_of(nothing) is None, nothing

    def login(seq, when, ip, asn=None):
        e = _event(seq, when, ip=ip)
        return replace(e, action_details={"securityContext": {"asNumber": asn}}) if asn else e

    # a phone on a carrier's network: a new /48 every time, one autonomous system
    trail = [login(i + 1, START + timedelta(days=i), f"2600:380:{i + 1:x}::1", 20057)
             for i in range(30)]
    trail.append(login(31, START + timedelta(days=30), "2600:380:ffff::1", 20057))
    trail.append(login(32, START + timedelta(days=30, hours=1), "203.0.113.9", 14061))
    X, _ = featurize(trail)
    assert X[30, NET] < 1 < X[31, NET]  # the carrier is hers; a hosting provider is not
    prefixes, _ = featurize([replace(e, action_details=None) for e in trail])
    assert prefixes[30, NET] > X[30, NET] + 2  # by prefix alone, each /48 is a new one


@EXAMPLES
@given(STEPS, st.sampled_from((1, 480)))
def test_rescoring_events_the_profile_has_since_forgotten_never_fails(steps, stretch):
    """Re-scoring (``--rescore --all`` after an upgrade that made the logged rows stale)
    describes events the profile may have pruned since, with their actor, types and
    values: counts that would go below zero stay at zero."""
    import numpy as np

    events = _stream(steps, stretch)
    _, profile = featurize(events)
    profile.prune(profile.newest + FORGET_AFTER + 1)  # everything forgotten
    assert not profile.actors and profile.total == 0 and not profile.types
    X, _ = featurize(events, profile)  # all at or below through_seq: re-scored
    assert X.shape == (len(events), len(FEATURE_NAMES)) and np.isfinite(X).all()


def _reference(details):
    """The three readings of an event's details as separate, plain scans."""
    import math
    import re

    if not isinstance(details, dict):
        return None, None, None
    scopes = [details, *(v for v in details.values() if isinstance(v, dict))]
    amounts = [math.log10(1 + abs(v)) for sc in scopes for k, v in sc.items()
               if k.lower() in ("amount", "total", "rows", "records", "count", "size_kb",
                                "size", "bytes", "quantity", "value", "bytestransferredout")
               and isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v)]
    asn = None
    for sc in scopes:
        for k, v in sc.items():
            if asn is None and k.lower() in ("asn", "asnumber", "as_number",
                                             "autonomous_system_number",
                                             "autonomoussystemnumber"):
                if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2 ** 32:
                    asn = f"AS{v}"
                elif isinstance(v, str):
                    m = re.fullmatch(r"(?:AS)?\s*(\d{1,10})", v.strip(), re.I)
                    if m and 0 < int(m.group(1)) < 2 ** 32:
                        asn = f"AS{int(m.group(1))}"
    country = None
    for sc in (details.get("geo"), details):
        if isinstance(sc, dict) and country is None:
            for k, v in sc.items():
                if k.lower() in ("country", "sourcecountry", "country_code", "countrycode") \
                        and isinstance(v, str) and v:
                    country = v[:64].upper()
                    break
    return (max(amounts) if amounts else None), asn, country


KEYS = st.sampled_from(("amount", "Total", "rows", "asn", "asNumber", "AS_NUMBER", "country",
                        "sourceCountry", "geo", "note", "bytes", "value"))
VALUES = st.one_of(st.integers(-10, 2 ** 33), st.floats(allow_nan=True), st.booleans(),
                   st.sampled_from(("AS7018", "as 15169", "7018", "ASX", "", "fr", "0")),
                   st.none())
DETAILS = st.dictionaries(KEYS, st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=4)),
                          max_size=6)


@EXAMPLES
@given(st.one_of(DETAILS, st.none(), st.lists(st.integers(), max_size=2)))
def test_one_pass_over_the_details_reads_what_three_scans_would(details):
    from trailseal_plugins.anomaly.features import details_traits

    assert details_traits(details) == _reference(details)
