"""The benign CloudTrail background of bench/eval_anomaly.py: the same records for a seed,
records the importer maps as it maps real ones, and a plausible volume per day."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from trailseal.services.ingest import validate_events
from trailseal_plugins.import_cloudtrail import map_record

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import cloudtrail_background as background  # noqa: E402


@pytest.fixture(scope="module")
def week() -> list[dict]:
    return background.generate(days=7, seed=3)


def test_the_same_seed_gives_the_same_records_and_another_seed_others(week):
    assert background.generate(days=7, seed=3) == week
    other = background.generate(days=7, seed=4)
    assert other != week
    assert {r["eventID"] for r in other}.isdisjoint(r["eventID"] for r in week)


def test_records_look_like_cloudtrail_and_map_without_problems(week):
    bodies = [map_record(r) for r in week]
    validate_events(bodies[:2000])
    for r in week:
        assert {"eventVersion", "userIdentity", "eventTime", "eventSource", "eventName",
                "awsRegion", "sourceIPAddress", "userAgent", "requestParameters",
                "responseElements", "eventID", "readOnly", "eventType",
                "recipientAccountId"} <= r.keys()
        assert ("errorCode" in r) == ("errorMessage" in r)
    assert [r["eventTime"] for r in week] == sorted(r["eventTime"] for r in week)
    assert len({r["eventID"] for r in week}) == len(week)
    assert all(b["ip_address"] for b in bodies)  # every benign address is a real one
    failed = sum("failed" in b["tags"] for b in bodies)
    assert 0.001 < failed / len(bodies) < 0.02
    kinds = Counter(b["actor"]["type"] for b in bodies)
    assert kinds["IAMUser"] and kinds["AssumedRole"] and kinds["WebIdentityUser"]
    logins = [r for r in week if r["eventName"] == "ConsoleLogin"]
    assert logins and all(r["additionalEventData"]["MFAUsed"] == "Yes" for r in logins)


def test_volume_per_day_is_plausible_and_weekends_are_quieter(week):
    start = background.START
    assert start.weekday() == 0 and (start.hour, start.minute) == (0, 0)
    per_day = Counter(r["eventTime"][:10] for r in week)
    assert len(per_day) == 7
    assert all(1000 <= n <= 2600 for n in per_day.values()), per_day
    people = Counter(r["eventTime"][:10] for r in week if r["userIdentity"]["type"] == "IAMUser")
    days = sorted(people)
    weekdays, weekend = [people[d] for d in days[:5]], [people[d] for d in days[5:]]
    assert min(weekdays) > 3 * max(weekend)
    principals = {r["userIdentity"].get("arn") or r["userIdentity"].get("userName")
                  for r in week}
    assert 15 <= len(principals) <= 40
