"""Ledger commands: verifying hash chains and importing events in bulk."""

from __future__ import annotations

import logging
import sys
import time

import click

from ..errors import TrailsealError
from ..types import ImportedEvent, Importer, ImportProblem
from .helpers import make_services, resolve_tenant_option, tenant_targets

__all__ = ["checkpoint", "import_events", "verify"]

log = logging.getLogger(__name__)


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


MAX_PROBLEM_LINES = 20  # skipped records printed one per line; the rest are only counted
SKIPPED_EXIT = 3  # the import finished, but some records were skipped


@click.command("import")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--format", "format_name", default="jsonl", show_default=True,
              help="Format of the files: jsonl (JSON Lines of event bodies) or one an "
                   "installed importer adds (trailseal plugins lists them under importers).")
@click.option("--batch-size", default=1000, show_default=True,
              type=click.IntRange(1, 1000), help="Events per atomic batch.")
@click.option("--skip", default=0, show_default=True, type=click.IntRange(0),
              help="Skip this many events first (to resume after an error).")
@click.option("--dry-run", is_flag=True, help="Only validate; write nothing.")
@click.option("--allow-skipped", is_flag=True,
              help="Exit 0 even when records were skipped (formats other than jsonl).")
@click.option("--workers", type=click.IntRange(0, 8), default=None,
              help="Helper processes that validate and encrypt (default: the shared pool, one "
                   "helper per CPU but one; 0 does everything in this process).")
@click.argument("sources", nargs=-1, required=True, type=click.File("rb"))
def import_events(tenant_ref: str, format_name: str, batch_size: int, skip: int,
                  dry_run: bool, allow_skipped: bool, workers: int | None, sources) -> None:
    """Append events from the files SOURCES (- for stdin), in order.

    jsonl (the default): one event body per line. Each batch is atomic. On the first bad
    line nothing of its batch is written; the batches before it stay committed, and the
    message says how to resume with --skip.

    Other formats (from importers): a record that cannot be read or mapped, or whose event
    fails validation, is reported on stderr by file and position and skipped; the others
    are appended. Exit status 3 when records were skipped (0 with --allow-skipped).
    """
    svc = make_services()
    if format_name == "jsonl":
        importer = None
    else:
        importer = _importers(svc.pm).get(format_name)
        if importer is None:
            choices = ", ".join(["jsonl", *sorted(_importers(svc.pm))])
            raise click.UsageError(f"unknown format '{format_name}'; choose from: {choices}")
    tid = resolve_tenant_option(svc, tenant_ref)
    label = len(sources) > 1  # name the file in messages only when there are several
    problems = ProblemReport()
    lines: dict[int, list[str]] = {}  # batch number -> where each of its events came from
    seen = 0

    def jsonl_items():
        for source in sources:
            prefix = f"{source.name} " if label else ""
            for lineno, line in enumerate(source, 1):
                if line.strip():
                    yield f"{prefix}line {lineno}", line.strip()  # decoded by the helpers

    def imported_items():
        from ..services.ingest import validate_events

        for source in sources:
            count = 0
            for item in importer.parse(source, source.name):
                if isinstance(item, ImportProblem):
                    problems.add(item)
                    continue
                count += 1
                body, where = ((item.body, item.position) if isinstance(item, ImportedEvent)
                               else (item, f"event {count}"))
                try:  # one by one, so a bad event is skipped, not the whole batch
                    validate_events([body])
                except TrailsealError as exc:
                    problems.add(ImportProblem(source.name, where, _first_error(exc.details)))
                    continue
                yield f"{source.name} {where}", body

    def batches():
        nonlocal seen
        batch, where, number = [], [], 0
        for position, event in (jsonl_items() if importer is None else imported_items()):
            seen += 1
            if seen <= skip:
                continue
            batch.append(event)
            where.append(position)
            if len(batch) == batch_size:
                lines[number] = where
                number += 1
                yield batch
                batch, where = [], []
        if batch:
            lines[number] = where
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
        _run(svc, tid, batches(), lines, committed, dry_run=dry_run, workers=workers,
             progress=progress)
    except BadLine as exc:
        hint = "" if dry_run else (
            f"; {committed_so_far('before it were')}; "
            f"fix it and re-run with --skip {skip + committed['events']}")
        problems.echo()
        raise click.ClickException(f"{exc.where}: {exc.reason}{hint}") from None
    except KeyboardInterrupt:
        if dry_run:
            raise
        problems.echo()
        raise click.ClickException(f"interrupted; {resume_hint()}") from None
    except Exception as exc:  # noqa: BLE001 - the database or a helper failed mid-import
        if dry_run:
            raise
        problems.echo()
        message = exc.message if isinstance(exc, TrailsealError) else (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise click.ClickException(f"import stopped: {message}; {resume_hint()}") from exc
    elapsed = time.perf_counter() - started
    problems.echo()
    verb = "validated" if dry_run else "appended"
    rate = committed["events"] / elapsed if elapsed > 0 else 0.0
    click.echo(f"{verb} {committed['events']} events to tenant {tenant_ref} in "
               f"{elapsed:.{1 if elapsed >= 10 else 2}f} s "
               f"({rate:,.0f} events/s)"
               + (f", head seq {committed['last_seq']}" if committed["last_seq"] else "")
               + (f"; skipped {problems.count} record(s)" if problems.count else ""))
    if problems.count and not allow_skipped:
        sys.exit(SKIPPED_EXIT)


def _run(svc, tid, batches, lines, committed, *, dry_run: bool, workers: int | None,
         progress) -> None:
    """Validate (``dry_run``) or append the batches; a bad event raises ``BadLine``."""
    from ..services.bulk import append_stream, parse_documents
    from ..services.ingest import validate_events

    if dry_run:
        for number, batch in enumerate(batches):
            try:
                validate_events(parse_documents(batch))
            except TrailsealError as exc:
                raise BadLine(lines[number][exc.details["index"]],
                              _first_error(exc.details)) from None
            committed["events"] += len(batch)
            lines.pop(number, None)
        return
    try:
        append_stream(svc, tid, batches, workers=workers, on_batch=progress)
    except TrailsealError as exc:
        details = exc.details or {}
        if "batch" not in details or "index" not in details:
            raise
        raise BadLine(lines[details["batch"]][details["index"]],
                      _first_error(details)) from None


def _importers(pm) -> dict[str, Importer]:
    """The importers plugins add, by name (``importers``); ``jsonl`` is built in."""
    found: dict[str, Importer] = {}
    for group in pm.hook.importers() or []:
        for importer in group or []:
            if not isinstance(importer, Importer):
                log.warning("ignoring %r from the importers hook: not a trailseal.types.Importer",
                            importer)
            elif importer.name != "jsonl":
                found.setdefault(importer.name, importer)
    return found


class ProblemReport:
    """The records an import skipped: the first ``MAX_PROBLEM_LINES`` are printed one per
    line on stderr, the rest counted."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[ImportProblem] = []

    def add(self, problem: ImportProblem) -> None:
        self.count += 1
        if len(self.shown) < MAX_PROBLEM_LINES:
            self.shown.append(problem)

    def echo(self) -> None:
        for problem in self.shown:
            click.echo(f"skipped {problem}", err=True)
        if self.count > len(self.shown):
            click.echo(f"… and {self.count - len(self.shown)} more skipped record(s)", err=True)
        if self.count:
            click.echo(f"{self.count} record(s) skipped", err=True)
        self.shown = []  # printed once, whichever way the command ends


def _first_error(details: dict) -> str:
    errors = details.get("errors") or [{"msg": "invalid event", "loc": []}]
    where = ".".join(str(p) for p in errors[0]["loc"])
    return errors[0]["msg"] + (f" at {where}" if where else "")


class BadLine(Exception):
    """An event of the source that cannot be appended: where it is (``line 18``, or
    ``events.jsonl line 18`` when several files are imported) and why."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


@click.command()
@click.option("--tenant", "tenant_ref", help="Tenant slug or id.")
@click.option("--all", "all_tenants", is_flag=True, help="Every tenant whose chain moved.")
@click.option("--no-publish", is_flag=True, help="Do not copy it to the witness.")
def checkpoint(tenant_ref: str | None, all_tenants: bool, no_publish: bool) -> None:
    """Sign a Merkle checkpoint of a tenant's chain head and publish it to the witness.

    Exit 0 when signed (or already current), 1 when the chain is broken."""
    from ..errors import Conflict
    from ..services.checkpoints import make_checkpoint

    svc, targets = tenant_targets(tenant_ref, all_tenants)
    failed = False
    for tid in targets:
        started = time.perf_counter()
        try:
            result = make_checkpoint(svc, tid, publish=not no_publish)
        except Conflict as exc:
            click.echo(f"tenant {tid}: not checkpointed: {exc.message}", err=True)
            failed |= exc.code == "chain_broken"
            continue
        cp = result["checkpoint"]
        if not result["created"]:
            click.echo(f"tenant {tid}: checkpoint at tree size {cp['tree_size']} is current "
                       "(no new events)")
            continue
        click.echo(f"tenant {tid}: signed checkpoint at tree size {cp['tree_size']}, root "
                   f"{cp['root'][:16]}… in {time.perf_counter() - started:.2f} s")
        witness = result["witness"]
        for where, label in (("file", "witness file"), ("webhook_status", "witness webhook")):
            if where in witness:
                click.echo(f"  {label}: {witness[where]}")
        for where in ("file_error", "webhook_error"):
            if where in witness:
                click.echo(f"  witness {where.split('_')[0]} failed: {witness[where]}", err=True)
        click.echo(cp["note"], nl=False)
    sys.exit(1 if failed else 0)
