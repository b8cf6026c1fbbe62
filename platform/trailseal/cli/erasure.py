"""GDPR erasure from the command line: ``trailseal erase``."""

from __future__ import annotations

import getpass
import json

import click

from .helpers import make_services, resolve_tenant_option

__all__ = ["erase"]


@click.command()
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--subject", "subject_id", required=True,
              help="The subject's id (an actor id, or the id of an entity of a person type).")
@click.option("--reason", required=True, help="Why (e.g. the request's reference); recorded.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def erase(tenant_ref: str, subject_id: str, reason: str, as_json: bool) -> None:
    """Erase a data subject: destroy its key so its events' sensitive fields read [erased]
    (the chain still verifies) and remove what was derived from them. Idempotent."""
    from ..errors import NotFound, ValidationFailed
    from ..services.erasure import erase_subject
    from ..services.tenancy import Principal

    svc = make_services()
    tid = resolve_tenant_option(svc, tenant_ref)
    principal = Principal("system", f"cli:{getpass.getuser()}", tid, frozenset({"audit:admin"}))
    try:
        result = erase_subject(svc, principal, subject_id, reason)
    except (NotFound, ValidationFailed) as exc:
        raise click.ClickException(exc.message) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    state = ("key destroyed" if result["key_destroyed"] else
             "already erased" if result["already_erased"] else "no key (tombstone written)")
    click.echo(f"subject {subject_id} erased ({state}): {result['events_erased']} events "
               f"now read [erased]")
    kept = result["events_not_erased"]
    if kept["legacy"] or kept["entity_not_person"]:
        click.echo(f"  still readable: {kept['legacy']} events written before per-subject keys, "
                   f"{kept['entity_not_person']} whose entity type is not a person")
    removed = ", ".join(f"{k} {v}" for k, v in result["derived_removed"].items())
    click.echo(f"  derived data removed: {removed}")
