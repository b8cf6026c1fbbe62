"""Scheduled reports: what one scheduler tick costs.

- ``next_slot``: slots computed per second (the scheduler computes one or two per run, the
  API one per schedule created), for a daily schedule in Europe/Berlin.
- a tick with due schedules: ``run_due_reports`` claims, writes (CSV, the events of one
  day) and mails every due schedule to a local SMTP server (aiosmtpd on 127.0.0.1, the
  test extra); seconds per report and reports per minute, the budget of the every-minute
  job.

The tenants (``bench-reports-<n>``) get ``--events`` events over the last day once; each run
adds ``--schedules`` fresh schedules spread over them, made due by the injected clock.

Run: ``.venv/bin/python bench/bench_reports.py [--quick] [--schedules N] [--instance DIR]``
"""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from benchlib import base_parser, ensure_tenant, event_count, load_events, open_app, print_header

TENANTS = 5


class Receiver:
    """aiosmtpd on 127.0.0.1 counting the messages it accepts."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.count = 0
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                outer.count += 1
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


def bench_next_slot(rounds: int) -> float:
    from trailseal.services.report_timing import next_slot

    zone = ZoneInfo("Europe/Berlin")
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    for _ in range(rounds):
        moment = next_slot("0 9 * * *", zone, moment)
    return rounds / (time.perf_counter() - started)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=200)
    parser.add_argument("--events", type=int, default=2_000, help="events per tenant")
    args = parser.parse_args()
    if args.quick:
        args.schedules, args.events = 20, 200

    from trailseal.schemas import ReportScheduleIn
    from trailseal.services.report_runs import run_due_reports
    from trailseal.services.reports import create_schedule
    from trailseal.services.tenancy import Principal

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("Scheduled reports", svc, schedules=args.schedules,
                 events_per_tenant=args.events)
    rate = bench_next_slot(2_000 if args.quick else 20_000)
    print(f"next_slot (daily 09:00 Europe/Berlin): {rate:,.0f} slots/s")

    receiver = Receiver()
    svc.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=receiver.port, SMTP_SECURITY="none")
    tenants = []
    for n in range(TENANTS):
        tid, _ = ensure_tenant(svc, f"bench-reports-{n}")
        if event_count(svc, tid) < args.events:
            load_events(svc, tid, args.events, span_days=1, label=f"tenant {n}")
        tenants.append(tid)

    # created a day ago: the first slot (the top of the last hour) is due now
    now = datetime.now(UTC)
    created = now - timedelta(days=1)
    body = ReportScheduleIn.model_validate({
        "name": "bench", "cron": "0 * * * *", "timezone": "UTC", "format": "csv",
        "recipients": ["bench@example.com"], "filters": {}})
    mine = set()
    for n in range(args.schedules):
        tid = tenants[n % TENANTS]
        principal = Principal("api_key", "bench", tid, frozenset({"audit:admin"}))
        mine.add(create_schedule(svc, principal, body, now=created)["id"])

    started = time.perf_counter()
    outcomes = run_due_reports(svc, now=now)
    elapsed = time.perf_counter() - started
    sent = [o for o in outcomes if o["schedule_id"] in mine and o["status"] == "sent"]
    failed = [o for o in outcomes if o["status"] != "sent"]
    print(f"one tick: {len(outcomes)} reports claimed, {len(sent)} of this run's sent, "
          f"{len(failed)} failed, {receiver.count} mails received, in {elapsed:.1f} s")
    print(f"  {elapsed / max(1, len(outcomes)) * 1000:.0f} ms per report (a CSV of the "
          f"tenant's last day, about {args.events} events); "
          f"{len(outcomes) / elapsed * 60:,.0f} reports per minute")
    again = time.perf_counter()
    assert not [o for o in run_due_reports(svc, now=now) if o["schedule_id"] in mine]
    print(f"  the same tick again (nothing due): {(time.perf_counter() - again) * 1000:.1f} ms")
    receiver.controller.stop()
    # clean up this run's schedules, so later runs measure their own
    for tid in tenants:
        with svc.db.transaction(tid) as conn:
            conn.exec_driver_sql(
                "DELETE FROM audit_scheduled_reports WHERE id = ANY(%s)",
                ([uuid.UUID(i) for i in mine],))
    svc.close()


if __name__ == "__main__":
    main()
