"""Hypothesis strategies for valid events and settings shared by the property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

BASE = datetime(2026, 6, 1, tzinfo=UTC)
SEVERITIES = ["info", "low", "medium", "high", "critical"]

safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x1c\x1d\x1e\x1f"),
    min_size=1, max_size=20,
)
name = st.sampled_from(["alice", "bob", "carol", "dave", "svc-billing"])
event_type = st.sampled_from(["invoice.deleted", "user.login", "role.granted", "export.downloaded"])
tag = st.sampled_from(["finance", "auth", "pii", "admin"])


@st.composite
def events(draw, base: datetime = BASE, span_hours: int = 24 * 40):
    minutes = draw(st.integers(min_value=0, max_value=span_hours * 60))
    body = {
        "event_type": draw(event_type),
        "occurred_at": (base - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "actor": {"id": draw(name), "type": "user"},
        "entity": {"type": draw(st.sampled_from(["invoice", "user", "report"])),
                   "id": draw(st.sampled_from(["1", "2", "3"]))},
        "severity": draw(st.sampled_from(SEVERITIES)),
        "tags": draw(st.lists(tag, max_size=2, unique=True)),
    }
    if draw(st.booleans()):
        body["ip_address"] = draw(st.ip_addresses()).exploded
    if draw(st.booleans()):
        body["user_agent"] = draw(safe_text)
    if draw(st.booleans()):
        body["action_details"] = draw(st.dictionaries(st.text(min_size=1, max_size=8),
                                                      st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), safe_text, st.booleans()),
                                                      max_size=3))
    return body
