"""The API-key services behind `trailseal apikey list` and `apikey revoke`."""

from __future__ import annotations

import uuid

import pytest

from trailseal.errors import NotFound, ValidationFailed
from trailseal.services.api_keys import list_api_keys, revoke_api_key
from trailseal.services.tenancy import create_api_key


def test_list_shows_keys_but_never_a_key(trailseal_services, tenant):
    extra = create_api_key(trailseal_services, tenant.id, ["audit:read"], "reader")
    keys = list_api_keys(trailseal_services, tenant.id)
    assert [k["name"] for k in keys][-1] == "reader"  # oldest first
    listed = next(k for k in keys if str(k["id"]) == extra["id"])
    assert listed["prefix"] == extra["prefix"] and listed["permissions"] == ["audit:read"]
    assert listed["revoked_at"] is None and listed["created_at"] is not None
    assert extra["token"] not in repr(keys) and tenant.token not in repr(keys)


def test_revoke_once_then_not_found(trailseal_services, tenant, trailseal_client):
    key = create_api_key(trailseal_services, tenant.id, ["audit:read"], "leaving")
    done = revoke_api_key(trailseal_services, tenant.id, key["id"])
    assert done["id"] == key["id"] and done["revoked_at"] is not None
    headers = {"Authorization": f"Bearer {key['token']}"}
    assert trailseal_client.get("/api/v1/events", headers=headers).status_code == 401
    with pytest.raises(NotFound, match=f"no active key {key['id']} in tenant {tenant.id}"):
        revoke_api_key(trailseal_services, tenant.id, key["id"])
    with pytest.raises(NotFound):  # nor is a key that never existed
        revoke_api_key(trailseal_services, tenant.id, uuid.uuid4())


def test_revoke_rejects_what_is_not_a_key_id(trailseal_services, tenant):
    with pytest.raises(ValidationFailed, match=r"'nope' is not a key id \(see `trailseal apikey list`\)"):
        revoke_api_key(trailseal_services, tenant.id, "nope")
