"""Tenant deletion for operators: see where a deletion stands, run its due steps now (what
the daily job does), or restore a tenant whose deletion is confirmed but not yet purged.
Requesting and confirming are the tenant admins' (``POST /api/v1/tenant/deletion``)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import TrailsealError
from .helpers import make_services, resolve_tenant_option

__all__ = ["tenant_deletion"]


def _show(tid, found) -> None:
    if found is None:
        click.echo(f"tenant {tid}: no deletion requested")
        return
    click.echo(f"tenant {tid}: deletion {found['id']} {found['state']} (requested by "
               f"{found['requested_by']} at {found['requested_at']}: {found['reason']})")
    if found.get("purge_after") and found["state"] == "marked":
        click.echo(f"  purge due from {found['purge_after']} (retention "
                   f"{found['retention_days']} days)"
                   + ("; a legal hold stops it" if found.get("legal_hold") else ""))
    for step in found.get("steps") or []:
        click.echo(f"  {step['at']}  {step['step']:<9} {step['actor']}")


@click.group("tenant-deletion")
def tenant_deletion() -> None:
    """Tenant deletion: status, run the due steps now, restore before the purge."""


@tenant_deletion.command("status")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--json", "as_json", is_flag=True, help="Print the deletion as JSON.")
def status_command(tenant_ref: str, as_json: bool) -> None:
    """Where the tenant's newest deletion stands, step by step."""
    from ..services.tenant_deletion import deletion_status

    svc = make_services()
    tid = resolve_tenant_option(svc, tenant_ref)
    found = deletion_status(svc, tid)
    if as_json:
        click.echo(json.dumps({"tenant_id": str(tid), "deletion": found}))
    else:
        _show(tid, found)


@tenant_deletion.command("run")
@click.option("--tenant", "tenant_ref", help="Only this tenant (slug or id).")
@click.option("--json", "as_json", is_flag=True, help="Print each result as JSON.")
def run_command(tenant_ref: str | None, as_json: bool) -> None:
    """Run every open deletion's due steps now (archive and mark what is confirmed, purge
    what is due). Exit 1 when a deletion could not go on."""
    from ..services.tenant_deletion import open_deletions, process_deletion

    svc = make_services()
    work = open_deletions(svc)
    if tenant_ref:
        tid = resolve_tenant_option(svc, tenant_ref)
        work = [(t, d) for t, d in work if t == tid]
    if not work:
        click.echo("no confirmed deletion to work on")
    failed = False
    for tid, did in work:
        try:
            result = process_deletion(svc, tid, did, actor="system:cli")
        except TrailsealError as exc:
            click.echo(f"tenant {tid}: deletion {did} stopped: {exc.message}", err=True)
            failed = True
            continue
        if as_json:
            click.echo(json.dumps(result))
            continue
        found = result["deletion"]
        click.echo(f"tenant {tid}: deletion {did}: {', '.join(result['done']) or 'nothing due'}"
                   f"; now {found['state']}")
        for archive in found.get("archives") or []:
            click.echo(f"  archive {archive['path']}: events {archive['from_seq']}.."
                       f"{archive['to_seq']}, sha256 {archive['sha256']}")
        if found["state"] == "marked":
            click.echo(f"  purge due from {found['purge_after']}")
        if found["state"] == "purged":
            res = found["purge_result"]
            click.echo(f"  removed {res['events_removed']} events; destroyed "
                       f"{res['data_keys_destroyed']} data keys and "
                       f"{res['subject_keys_destroyed']} subject keys")
    if failed:
        sys.exit(1)


@tenant_deletion.command("restore")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--reason", required=True, help="Why (kept in the deletion's record).")
def restore_command(tenant_ref: str, reason: str) -> None:
    """Undo a confirmed deletion before its purge: the chain reopens and the tenant's users
    and API keys work again."""
    from ..services.tenant_deletion import restore_tenant

    svc = make_services()
    tid = resolve_tenant_option(svc, tenant_ref)
    try:
        found = restore_tenant(svc, tid, reason, actor="system:cli")
    except TrailsealError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"tenant {tid}: deletion {found['id']} restored; the tenant is active again")
