"""Field encryption primitives."""

import base64
import os
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trailseal.errors import ConfigurationError
from trailseal.services.crypto import (
    DecryptionFailed,
    decrypt_field,
    encrypt_field,
    parse_master_key,
)

T, E = uuid.uuid4(), uuid.uuid4()


def test_round_trip_and_fresh_nonces():
    key = AESGCM(AESGCM.generate_key(bit_length=256))
    a = encrypt_field(key, T, E, "ip_address", b"10.0.0.1")
    b = encrypt_field(key, T, E, "ip_address", b"10.0.0.1")
    assert a != b and b"10.0.0.1" not in a
    assert decrypt_field(key, T, E, "ip_address", a) == b"10.0.0.1"


@pytest.mark.parametrize("tenant,event,field", [
    (uuid.uuid4(), E, "ip_address"), (T, uuid.uuid4(), "ip_address"), (T, E, "user_agent"),
])
def test_ciphertext_is_bound_to_its_row_and_field(tenant, event, field):
    key = AESGCM(AESGCM.generate_key(bit_length=256))
    blob = encrypt_field(key, T, E, "ip_address", b"secret")
    with pytest.raises(DecryptionFailed):
        decrypt_field(key, tenant, event, field, blob)


def test_master_key_parsing():
    raw = os.urandom(32)
    assert parse_master_key(base64.b64encode(raw).decode()) == raw
    assert parse_master_key(raw.hex()) == raw
    with pytest.raises(ConfigurationError):
        parse_master_key(base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(ConfigurationError):
        parse_master_key("not base64 !!")
