"""How new a behaviour is: ``new_habits_1h`` and ``new_habit_share_1h`` keep saying "new"
through a run of repeats (where the count-based rarities fade), say nothing on a young
trail's first day or for routine, count a new client on a known account, and profiles
written before first times were kept (version 2) still load."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.types import Event
from trailseal_plugins.anomaly.features import INDEX, Profile, featurize

EXAMPLES = settings(max_examples=100, deadline=None)
START = datetime(2026, 1, 5, 8, tzinfo=UTC)
NEW = INDEX["new_habits_1h"]
SHARE = INDEX["new_habit_share_1h"]
EVENTS_1H = INDEX["actor_events_1h"]
RARITY = INDEX["new_action_for_actor"]


def _event(seq: int, when: datetime, actor: str = "dev@x", etype: str = "s3.ListBuckets",
           agent: str | None = "console") -> Event:
    return Event(id=f"e{seq}", tenant_id="t", seq=seq, occurred_at=when.isoformat(),
                 event_type=etype, actor_id=actor, actor_type="user", actor_role=None,
                 actor_department=None, entity_type="bucket", entity_id=f"b{seq % 5}",
                 severity="info", source=None, tags=(), ip_address="10.0.0.5",
                 user_agent=agent, action_details=None)


def _routine(days: int = 10) -> list[Event]:
    """Two people doing the same three calls with their usual client, every working hour."""
    events = []
    for d in range(days):
        for h in range(8):
            for k, (actor, etype) in enumerate((("dev@x", "s3.ListBuckets"),
                                                ("dev@x", "ec2.DescribeInstances"),
                                                ("ops@x", "s3.ListBuckets"))):
                events.append(_event(len(events) + 1, START + timedelta(days=d, hours=h,
                                                                        minutes=10 * k),
                                     actor, etype))
    return events


def _burst(trail: list[Event], n: int) -> list[Event]:
    """``n`` calls of a type the routine never makes, 20 s apart, on day 10 of the trail."""
    at = START + timedelta(days=10, hours=2)
    return [_event(len(trail) + i + 1, at + timedelta(seconds=20 * i), etype="ssm.SendCommand")
            for i in range(n)]


def test_a_repeated_new_call_stays_new_while_its_rarity_fades():
    trail = _routine()
    burst = _burst(trail, 30)
    X, _ = featurize(trail + burst)
    rows = X[len(trail):]
    assert list(rows[:, NEW]) == list(range(1, 31))  # every repeat is still a new call
    assert rows[-1, RARITY] < rows[0, RARITY] / 2  # while "how often" says: usual by now
    assert rows[-1, SHARE] == 1.0


def test_routine_and_a_young_trails_first_day_are_not_new():
    trail = _routine()
    X, _ = featurize(trail)
    first_day = [i for i, e in enumerate(trail) if e.occurred_at < (START + timedelta(days=1))
                 .isoformat()]
    assert first_day and not X[first_day, NEW].any()  # everything is new there: no burst
    assert not X[:, NEW].any() and not X[:, SHARE].any()


def test_a_new_client_on_a_known_account_counts_and_an_old_one_does_not():
    trail = _routine()
    at = START + timedelta(days=10, hours=2)
    tail = [_event(len(trail) + 1, at, agent="stolen-key-tool/1.0"),
            _event(len(trail) + 2, at + timedelta(minutes=1), agent="stolen-key-tool/1.0"),
            _event(len(trail) + 3, at + timedelta(minutes=2), actor="ops@x")]
    X, _ = featurize(trail + tail)
    assert list(X[-3:, NEW]) == [1, 2, 0]


def test_a_habit_stops_being_new_a_day_after_it_was_taken_up():
    trail = _routine()
    at = START + timedelta(days=10, hours=2)
    tail = [_event(len(trail) + 1, at, etype="iam.CreateAccessKey"),
            _event(len(trail) + 2, at + timedelta(hours=23), etype="iam.CreateAccessKey"),
            _event(len(trail) + 3, at + timedelta(hours=25), etype="iam.CreateAccessKey")]
    X, _ = featurize(trail + tail)
    assert list(X[-3:, NEW]) == [1, 1, 0]


def _as_version_2(profile: Profile) -> bytes:
    """The profile as version 2 wrote it: no first times, no new-habit counts."""
    data = orjson.loads(zlib.decompress(profile.to_bytes()))
    data["v"] = 2
    data.pop("firsts")
    data.pop("started")
    for key, value in data["pairs"].items():
        if key.startswith("t\x1f"):
            data["pairs"][key] = value[:2]
    for actor in data["actors"].values():
        actor[9] = actor[9][:5]
        for entry in actor[6]:
            entry[1] &= 15
    return zlib.compress(orjson.dumps(data), 3)


def test_version_2_profiles_still_load_and_carry_on():
    trail = _routine()
    _, profile = featurize(trail)
    old = Profile.from_bytes(_as_version_2(profile))
    at = START + timedelta(days=10, hours=2)
    tail = [_event(len(trail) + 1, at),  # routine
            _event(len(trail) + 2, at + timedelta(minutes=1), etype="kms.Decrypt"),
            _event(len(trail) + 3, at + timedelta(minutes=2), etype="kms.Decrypt")]
    X, walked = featurize(tail, old)
    assert list(X[:, NEW]) == [0, 1, 2]
    again = Profile.from_bytes(walked.to_bytes())
    assert orjson.loads(zlib.decompress(walked.to_bytes()))["v"] == Profile.VERSION
    assert again.started == profile.started


ACTORS = st.sampled_from(("ana@x", "bo@x", "cy@x"))
TYPES = st.sampled_from(("s3.ListBuckets", "ec2.DescribeInstances", "iam.CreateAccessKey",
                         "ssm.SendCommand"))
AGENTS = st.sampled_from(("console", "aws-cli/2", None))
STEPS = st.lists(st.tuples(st.integers(0, 6 * 3600), ACTORS, TYPES, AGENTS), min_size=2,
                 max_size=60)


def _stream(steps) -> list[Event]:
    events, t = [], START
    for i, (gap, actor, etype, agent) in enumerate(steps):
        t += timedelta(seconds=gap)
        events.append(_event(i + 1, t, actor, etype, agent))
    return events


@EXAMPLES
@given(STEPS, st.integers(1, 59))
def test_new_habits_are_bounded_and_survive_a_save_in_the_middle(steps, cut):
    events = _stream(steps)
    cut = min(cut, len(events) - 1)
    X, _ = featurize(events)
    assert (X[:, NEW] >= 0).all() and (X[:, NEW] <= X[:, EVENTS_1H]).all()
    assert ((X[:, SHARE] >= 0) & (X[:, SHARE] <= 1)).all()
    first, profile = featurize(events[:cut])
    rest, _ = featurize(events[cut:], Profile.from_bytes(profile.to_bytes()))
    assert (first == X[:cut]).all() and (rest == X[cut:]).all()


@EXAMPLES
@given(STEPS)
def test_rescoring_the_newest_event_gives_its_new_habits_again(steps):
    events = _stream(steps)
    X, profile = featurize(events)
    again, _ = featurize(events[-1:], profile)  # already folded in: its own part left out
    assert again[0, NEW] == X[-1, NEW] and again[0, SHARE] == X[-1, SHARE]


def test_the_alert_sentence_names_the_burst_of_new_behaviour():
    import numpy as np

    from trailseal_plugins.anomaly.explain import explain_event

    trail = _routine()
    burst = _burst(trail, 12)
    X, _ = featurize(trail + burst)
    contributions = np.zeros(X.shape[1])
    contributions[SHARE], contributions[NEW] = 0.5, 0.4  # the burst, strongest first
    found = explain_event(burst[-1], X[-1], contributions, 0.7, 0.58)
    assert found["summary"].startswith("12 of their 12 events in the last hour were calls or "
                                       "clients new to them")
    assert [c["feature"] for c in found["contributions"]] == ["new_habit_share_1h",
                                                             "new_habits_1h"]
    assert "stolen keys" in found["suggested_actions"][0]
