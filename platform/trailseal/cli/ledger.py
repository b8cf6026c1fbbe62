"""Ledger commands: verifying hash chains and importing events in bulk."""

from __future__ import annotations

import sys
import time

import click

from ..errors import TrailsealError
from .helpers import make_services, resolve_tenant_option

__all__ = ["import_events", "verify"]


@click.command()
@click.option("--tenant", "tenant_ref", help="Tenant slug or id.")
@click.option("--all", "all_tenants", is_flag=True, help="Verify every tenant.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--full", is_flag=True,
              help="Decode every record and compare it with its columns field by field "
                   "(slower; does not rely on the records' columns_hash).")
def verify(tenant_ref: str | None, all_tenants: bool, as_json: bool, full: bool) -> None:
    """Verify hash chains. Exit 0 when intact, 1 when broken."""
    import json

    from ..services.integrity import verify_chain
    from ..services.tenancy import tenant_ids

    if bool(tenant_ref) == bool(all_tenants):
        raise click.UsageError("give either --tenant T or --all")
    svc = make_services()
    try:
        targets = tenant_ids(svc) if all_tenants else [resolve_tenant_option(svc, tenant_ref)]
    except click.ClickException as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(2)  # 1 is reserved for "chain broken"
    broken = False
    for tid in targets:
        report = verify_chain(svc, tid, full=full)
        broken |= not report.intact
        if as_json:
            click.echo(json.dumps(report.to_dict()))
        elif report.intact:
            click.echo(f"tenant {tid}: chain intact, {report.events_checked} events, "
                       f"head seq {report.head_seq} {report.head_hash[:16]}…")
        else:
            click.echo(
                f"tenant {tid}: CHAIN BROKEN at seq {report.broken_seq} "
                f"(event {report.broken_event_id or 'unknown'}): {report.reason}: {report.detail}"
            )
    sys.exit(1 if broken else 0)


@click.command("import")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--batch-size", default=1000, show_default=True,
              type=click.IntRange(1, 1000), help="Events per atomic batch.")
@click.option("--skip", default=0, show_default=True, type=click.IntRange(0),
              help="Skip this many events first (to resume after an error).")
@click.option("--dry-run", is_flag=True, help="Only validate; write nothing.")
@click.option("--workers", type=click.IntRange(0, 8), default=None,
              help="Helper processes that validate and encrypt (default: the shared pool, one "
                   "helper per CPU but one; 0 does everything in this process).")
@click.argument("source", type=click.File("rb"))
def import_events(tenant_ref: str, batch_size: int, skip: int, dry_run: bool,
                  workers: int | None, source) -> None:
    """Append events from SOURCE (JSON Lines, one event per line; - for stdin).

    Each batch is atomic. On the first bad line nothing of its batch is written; the
    batches before it stay committed, and the message says how to resume with --skip.
    """
    from ..services.bulk import append_stream, parse_documents
    from ..services.ingest import validate_events

    svc = make_services()
    tid = resolve_tenant_option(svc, tenant_ref)
    lines: dict[int, list[int]] = {}  # batch number -> source line of each of its events
    seen = 0

    def batches():
        nonlocal seen
        batch, numbers, number = [], [], 0
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            seen += 1
            if seen <= skip:
                continue
            batch.append(line.strip())  # decoded (and checked) by the helpers
            numbers.append(lineno)
            if len(batch) == batch_size:
                lines[number] = numbers
                number += 1
                yield batch
                batch, numbers = [], []
        if batch:
            lines[number] = numbers
            yield batch

    committed = {"events": 0, "last_seq": None, "batches": 0}

    def progress(result) -> None:
        committed["events"] += len(result.ids)
        committed["last_seq"] = result.last_seq
        lines.pop(committed["batches"], None)  # batches commit in order
        committed["batches"] += 1

    def committed_so_far(what: str) -> str:
        done = committed["events"]
        return (f"{done} event(s) {what} committed"
                + (f" (up to seq {committed['last_seq']})" if done else ""))

    def resume_hint() -> str:
        return (f"{committed_so_far('of this run were')}; "
                f"re-run with --skip {skip + committed['events']}")

    started = time.perf_counter()
    try:
        if dry_run:
            for number, batch in enumerate(batches()):
                try:
                    validate_events(parse_documents(batch))
                except TrailsealError as exc:
                    raise BadLine(lines[number][exc.details["index"]],
                                  _first_error(exc.details)) from None
                committed["events"] += len(batch)
                lines.pop(number, None)
        else:
            try:
                append_stream(svc, tid, batches(), workers=workers, on_batch=progress)
            except TrailsealError as exc:
                details = exc.details or {}
                if "batch" not in details or "index" not in details:
                    raise
                raise BadLine(lines[details["batch"]][details["index"]],
                              _first_error(details)) from None
    except BadLine as exc:
        hint = "" if dry_run else (
            f"; {committed_so_far('before it were')}; "
            f"fix it and re-run with --skip {skip + committed['events']}")
        raise click.ClickException(f"line {exc.lineno}: {exc.reason}{hint}") from None
    except KeyboardInterrupt:
        if dry_run:
            raise
        raise click.ClickException(f"interrupted; {resume_hint()}") from None
    except Exception as exc:  # noqa: BLE001 - the database or a helper failed mid-import
        if dry_run:
            raise
        message = exc.message if isinstance(exc, TrailsealError) else (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise click.ClickException(f"import stopped: {message}; {resume_hint()}") from exc
    elapsed = time.perf_counter() - started
    verb = "validated" if dry_run else "appended"
    rate = committed["events"] / elapsed if elapsed > 0 else 0.0
    click.echo(f"{verb} {committed['events']} events to tenant {tenant_ref} in "
               f"{elapsed:.{1 if elapsed >= 10 else 2}f} s "
               f"({rate:,.0f} events/s)"
               + (f", head seq {committed['last_seq']}" if committed["last_seq"] else ""))


def _first_error(details: dict) -> str:
    errors = details.get("errors") or [{"msg": "invalid event", "loc": []}]
    where = ".".join(str(p) for p in errors[0]["loc"])
    return errors[0]["msg"] + (f" at {where}" if where else "")


class BadLine(Exception):
    """A line of the source that cannot be appended: its number in the file and why."""

    def __init__(self, lineno: int, reason: str):
        super().__init__(f"line {lineno}: {reason}")
        self.lineno, self.reason = lineno, reason
