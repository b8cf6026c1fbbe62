"""The rendering embeddings, the full-text index and narrators read (``Event.text``), and the
offline narrator's quoting of event values."""

from __future__ import annotations

from trailseal.types import TEXT_MAX_CHARS, Event, short_id, words_of
from trailseal_plugins.narrate_local import compose_answer, quote


def _event(**kw) -> Event:
    base = dict(id="e1", tenant_id="t", seq=1, occurred_at="2026-11-20T10:00:00.000000Z",
                event_type="iam.CreateUser", actor_id="arn:aws:iam::1:user/alice",
                actor_type="IAMUser", actor_role="dev", actor_department="eng",
                entity_type="aws:iam:user", entity_id="bob", severity="high",
                source="aws-cli", tags=("failed",), ip_address="203.0.113.7",
                action_details={"cloudtrail": {"eventName": "CreateUser",
                                               "requestParameters": {"userName": "bob"},
                                               "errorCode": None, "list": [1, 2]}})
    base.update(kw)
    return Event(**base)


def test_the_documented_rendering():
    assert _event().text() == (
        "iam create user (iam.CreateUser) on aws:iam:user bob by IAMUser alice (dev, eng) "
        "via aws-cli; severity high; tags failed; from 203.0.113.7; "
        "actor arn:aws:iam::1:user/alice; details: eventName: CreateUser; userName: bob; "
        "list: 1; list: 2")


def test_minimal_event_and_limits():
    e = _event(actor_role=None, actor_department=None, source=None, tags=(), ip_address=None,
               action_details=None, actor_id="u-1")
    assert e.text() == "iam create user (iam.CreateUser) on aws:iam:user bob by IAMUser u-1; " \
                       "severity high"
    long = _event(action_details={"note": "x\x00y\n" + "z" * 5000})
    text = long.text()
    assert len(text) == TEXT_MAX_CHARS and "\x00" not in text and "\n" not in text


def test_words_and_short_ids():
    assert words_of("s3.DeleteBucket") == "s3 delete bucket"
    assert words_of("EC2InstanceConnect.SendSSHPublicKey") == \
        "ec2 instance connect send ssh public key"
    assert short_id("arn:aws:sts::1:assumed-role/ci/run-7") == "run-7"
    assert short_id("INV-1") == "INV-1" and short_id("a/") == "a/"


def test_quoted_values_cannot_break_lines_or_forge_citations():
    assert quote("x\n[00000000-0000-4000-8000-000000000000]`y") == \
        "`x 00000000-0000-4000-8000-000000000000 y`"
    assert len(quote("a" * 500)) == 82


def test_answers_cite_every_claim():
    events = [{"id": f"id-{n}", "occurred_at": f"2026-11-2{n}T00:00:00Z",
               "event_type": "iam.CreateUser", "severity": "high", "tags": [],
               "actor": {"id": "alice\n- forged [id-9]", "type": "user"},
               "entity": {"type": "user", "id": str(n)}} for n in range(3)]
    answer = compose_answer("who created users?", events)
    lines = answer.splitlines()
    assert lines[0].startswith("3 event(s)") and all("[id-" in line for line in lines[1:])
    assert "[id-9]" not in answer
    assert compose_answer("anything", []) == "No events match the question."


def test_the_documented_embedding_rendering():
    assert _event().embedding_text() == (
        "iam create user on aws iam user bob by iam user alice (dev, eng); failed; "
        "severity high; eventName CreateUser; userName bob")
    # ids that are numbers or random tokens, key:value tags and numeric details are left out
    e = _event(entity_id="i-0a1b2c3d4e5f", actor_id="017622104382",
               tags=("cloudtrail", "eventid:450230d4-b39e-4a18"), actor_role=None,
               actor_department=None, action_details={"port": 22, "cidr": "0.0.0.0/0",
                                                       "note": "x\x00y"})
    assert e.embedding_text() == ("iam create user on aws iam user by iam user; cloudtrail; "
                                  "severity high; note x y")
    long = _event(action_details={"note": "word " * 1000, "other": "z" * 5000})
    assert len(long.embedding_text()) <= TEXT_MAX_CHARS


def test_the_embedding_rendering_is_shorter_and_keeps_what_happened_first():
    e = _event()
    assert len(e.embedding_text()) < len(e.text())
    assert e.embedding_text().startswith(words_of(e.event_type))
