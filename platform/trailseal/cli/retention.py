"""Retention commands: apply a tenant's retention now (or see what it would remove), and
open an archive of removed events."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import TrailsealError
from .helpers import make_services, tenant_targets

__all__ = ["retention"]


@click.group(invoke_without_command=True)
@click.option("--tenant", "tenant_ref", help="Tenant slug or id.")
@click.option("--all", "all_tenants", is_flag=True, help="Every tenant (what the daily job does).")
@click.option("--dry-run", is_flag=True, help="Only say what would be archived and removed.")
@click.option("--json", "as_json", is_flag=True, help="Print each tenant's result as JSON.")
@click.pass_context
def retention(ctx: click.Context, tenant_ref: str | None, all_tenants: bool, dry_run: bool,
              as_json: bool) -> None:
    """Archive and remove the expired, unheld prefix of a tenant's chain (its retention
    period, legal holds and checkpoints decide what may go). Exit 0 when done (or nothing to
    do), 1 when a tenant could not be purged."""
    if ctx.invoked_subcommand is not None:
        return
    from ..services.retention import apply_retention

    svc, targets = tenant_targets(tenant_ref, all_tenants)
    failed = False
    for tid in targets:
        try:
            result = apply_retention(svc, tid, dry_run=dry_run, actor="system:cli")
        except TrailsealError as exc:
            click.echo(f"tenant {tid}: retention not applied: {exc.message}", err=True)
            failed = True
            continue
        if as_json:
            click.echo(json.dumps(result))
            continue
        expiring = result["expiring"]
        head = (f"tenant {tid}: retention {result['retention_days']} days; removed so far: "
                f"seq 1..{result['purged_through_before']}" if result["purged_through_before"]
                else f"tenant {tid}: retention {result['retention_days']} days; nothing removed "
                     "so far")
        click.echo(head)
        if result["tenant_on_hold"]:
            click.echo("  the tenant is under a legal hold: nothing may go")
        if dry_run:
            if expiring["events"]:
                click.echo(f"  would archive and remove events {expiring['from_seq']}.."
                           f"{expiring['to_seq']} ({expiring['events']} events)")
            else:
                click.echo("  nothing may go now (unexpired, held, not yet checkpointed, or "
                           "less than a block of 64)")
            continue
        for purge in result["purges"]:
            click.echo(f"  archived events {purge['from_seq']}..{purge['to_seq']} to "
                       f"{purge['archive']} ({purge['archive_bytes']} bytes, sha256 "
                       f"{purge['archive_sha256']}), then removed {purge['events_removed']}")
        if not result["purges"]:
            click.echo("  nothing to remove")
    if failed:
        sys.exit(1)


@retention.command("open")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the bundle (JSON) it holds.")
def open_command(archive: Path, output: Path) -> None:
    """Decrypt an archive of removed events (with this instance's master key) into the
    export bundle it holds; check it with ``trailseal-verify OUTPUT --public-key …``."""
    from ..services.archives import open_archive

    svc = make_services()
    tmp = output.with_name(f".{output.name}.part")
    try:
        with open(tmp, "wb") as out:
            header = open_archive(svc.keyring, archive, out)
    except TrailsealError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(exc.message) from None
    tmp.replace(output)
    click.echo(f"events {header['from_seq']}..{header['to_seq']} of tenant "
               f"{header['tenant_id']} written to {output}")
