"""Profile pruning: actors, (actor, event type) habits and an actor's addresses, networks,
user agents and entity types not seen for ``FORGET_AFTER`` are forgotten as the trail
moves on, the tenant-wide counts lose what was forgotten, and what
is still in use stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.types import Event
from trailseal_plugins.anomaly.features import (
    FORGET_AFTER,
    INDEX,
    PRUNE_EVERY,
    SEP,
    Profile,
    featurize,
)

START = datetime(2024, 1, 1, 9, tzinfo=UTC)
DAY = timedelta(days=1)


def _event(seq: int, when: datetime, actor: str, etype: str = "doc.viewed",
           ip: str = "10.0.0.1") -> Event:
    return Event(id=f"e{seq}", tenant_id="t", seq=seq, occurred_at=when.isoformat(),
                 event_type=etype, actor_id=actor, actor_type="user", actor_role=None,
                 actor_department=None, entity_type="doc", entity_id=f"d{seq % 3}",
                 severity="info", source=None, tags=(), ip_address=ip, user_agent="web",
                 action_details=None)


def _keys_of(profile: Profile, actor: str) -> list[str]:
    return [k for k in profile.pairs if k.split(SEP, 2)[1] == actor]


def test_a_departed_actor_and_an_abandoned_habit_are_forgotten():
    events = []
    for d in range(30):  # ana and bo at work for a month; bo also exports, once a day
        events.append(_event(len(events) + 1, START + d * DAY, "ana@x"))
        events.append(_event(len(events) + 1, START + d * DAY, "bo@x"))
        events.append(_event(len(events) + 1, START + d * DAY, "bo@x", "report.exported"))
    for d in range(30, 480):  # then ana leaves and bo stops exporting
        events.append(_event(len(events) + 1, START + d * DAY, "bo@x"))
    _, profile = featurize(events)
    assert "ana@x" not in profile.actors and not _keys_of(profile, "ana@x")
    assert profile.total == 30 + 480  # ana's 30 events left the tenant-wide counts
    assert profile.types["doc.viewed"] == 480
    assert profile.seen[f"i{SEP}10.0.0.1"] == 480 + 30  # bo's exports came from there too
    assert f"t{SEP}bo@x{SEP}report.exported" not in profile.pairs  # an abandoned habit
    assert f"t{SEP}bo@x{SEP}doc.viewed" in profile.pairs  # one still in use
    # the abandoned habit, taken up again, is new again; ana, back, is a newcomer
    tail = [_event(len(events) + 1, START + 480 * DAY, "bo@x", "report.exported"),
            _event(len(events) + 2, START + 480 * DAY, "ana@x")]
    X, _ = featurize(tail, profile)
    assert X[0, INDEX["days_since_actor_did_this"]] >= 300
    assert X[0, INDEX["new_action_for_actor"]] > 5
    assert X[1, INDEX["actor_history"]] == 0 and X[1, INDEX["new_actor"]] > 0


def test_pruning_is_kept_across_saves():
    events = [_event(i + 1, START + i * DAY, "ana@x") for i in range(20)]
    _, profile = featurize(events)
    again = Profile.from_bytes(profile.to_bytes())
    assert again.pruned == profile.pruned and again.newest == profile.newest
    assert profile.newest - profile.pruned < PRUNE_EVERY


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 90 * 86400), st.sampled_from(("a", "b", "c", "d")),
                          st.sampled_from(("x.read", "x.write", "x.delete"))),
                min_size=1, max_size=80))
def test_nothing_older_than_the_horizon_survives_a_pruning(steps):
    events, t = [], START
    for i, (gap, actor, etype) in enumerate(steps):
        t += timedelta(seconds=gap)
        events.append(_event(i + 1, t, actor, etype))
    _, profile = featurize(events)
    horizon = profile.pruned - FORGET_AFTER  # as of the last pruning
    for actor in profile.actors.values():
        assert actor[7] >= horizon or actor[7] > profile.pruned
    for key, value in profile.pairs.items():
        if key.startswith(f"t{SEP}"):
            assert value[1] >= horizon or value[1] > profile.pruned
        else:  # an address, network, user agent or entity type: its last use
            assert profile.last[key] >= horizon or profile.last[key] > profile.pruned
    assert set(profile.last) == {k for k in profile.pairs if not k.startswith(f"t{SEP}")}
    # the tenant's event count is exactly what the kept actors account for
    assert profile.total == sum(a[0] for a in profile.actors.values())
