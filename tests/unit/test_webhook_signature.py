"""The receiver's verification code in the admin guide, run as documented, against what the
webhook channel sends: genuine requests pass; tampered bodies, wrong secrets, replays older
than 5 minutes and malformed headers fail."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal_plugins.notify.webhook import SIGNATURE_HEADER, signed_request

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "admin-guide.md"
SECRET = "whsec_" + "s" * 40


def _snippet():
    section = GUIDE.read_text().split("### Signed webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(GUIDE), "exec"), namespace)  # noqa: S102 - our own document
    return namespace["verify_trailseal_signature"]


verify = _snippet()


def _message(title="Unusual export"):
    return {"delivery_id": "d-1", "type": "alert", "tenant": {"id": "t", "slug": "t", "name": "T"},
            "integration": {"id": "i", "name": "hook"},
            "alert": {"id": "a", "kind": "anomaly", "severity": "high", "title": title,
                      "details": {}, "event_id": None, "created_at": "2026-11-28T00:00:00Z"}}


def test_a_genuine_request_verifies():
    body, headers = signed_request(SECRET, _message())
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert orjson.loads(body)["alert"]["title"] == "Unusual export"


def test_tampered_body_wrong_secret_and_malformed_headers_fail():
    body, headers = signed_request(SECRET, _message())
    header = headers[SIGNATURE_HEADER]
    tampered = body.replace(b"high", b"low!")
    assert tampered != body and not verify(SECRET, tampered, header)
    assert not verify(SECRET + "x", body, header)
    stamp = header.split(",")[0]
    for bad in ("", "garbage", "t=abc,v1=00", stamp, f"{stamp},v1=", f"{stamp},v0=" +
                header.split("v1=")[1], "v1=" + header.split("v1=")[1]):
        assert not verify(SECRET, body, bad), bad
    # Moving the signature to another timestamp breaks it too.
    other = header.replace(stamp, f"t={int(stamp[2:]) + 1}")
    assert not verify(SECRET, body, other)


@pytest.mark.parametrize("age,accepted", [(0, True), (299, True), (-299, True),
                                          (301, False), (3600, False), (-301, False)])
def test_replays_older_than_five_minutes_are_refused(age, accepted):
    now = time.time()
    body, headers = signed_request(SECRET, _message(), now=now - age)
    assert verify(SECRET, body, headers[SIGNATURE_HEADER], now=now) is accepted


@settings(max_examples=100, deadline=None)
@given(title=st.text(max_size=200), flip=st.integers(min_value=0))
def test_any_body_verifies_and_any_changed_byte_fails(title, flip):
    body, headers = signed_request(SECRET, _message(title))
    header = headers[SIGNATURE_HEADER]
    assert verify(SECRET, body, header)
    i = flip % len(body)
    changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
    assert not verify(SECRET, changed, header)
