"""Reports & integrations (admins): the notification channels alerts go to and the scheduled
reports mailed to people, each listed with its state and created, tested or run, and
deleted here. Forms are built from what is installed: a channel's fields come from its
JSON Schema, the report formats from the export plugins."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from pydantic import ValidationError

from trailseal.types import Viewer

from . import data

SEVERITIES = ["info", "low", "medium", "high", "critical"]
ZONES = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
         "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney"]


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return getattr(exc, "message", None) or str(exc)


def reports_and_integrations(viewer: Viewer):
    kinds = data.channel_kinds()
    first = next(iter(sorted(kinds)), None)
    mail = data.report_mail_problem()
    return [
        html.H2("Reports & integrations", className="mb-1"),
        html.P("Where alerts are sent, and which reports are mailed to whom. Changes here "
               "take effect at once.", className="text-muted"),
        dbc.Card([dbc.CardHeader(html.Strong("Notification channels")), dbc.CardBody([
            html.P("Alerts at or above a channel's minimum severity are sent to it, retried "
                   "for hours if it is down; what still fails is listed as dead letters.",
                   className="text-muted small"),
            dcc.Loading(html.Div(_channel_list(), id="channel-list")),
            html.Hr(),
            html.H6("Add a channel"),
            dbc.Row([
                dbc.Col([dbc.Label("Type"), dbc.Select(
                    id="channel-kind", value=first,
                    options=[{"label": f"{k} — {c.description}" if c.description else k,
                              "value": k} for k, c in sorted(kinds.items())])], md=4),
                dbc.Col([dbc.Label("Name"), dbc.Input(id="channel-name", maxlength=100,
                                                      placeholder="e.g. SOC Slack")], md=4),
                dbc.Col([dbc.Label("Minimum severity"), dbc.Select(
                    id="channel-severity", options=SEVERITIES, value="medium")], md=4),
            ], className="g-2 mb-2"),
            html.Div(_config_fields(kinds.get(first)), id="channel-config"),
            dbc.Button("Add channel", id="channel-add", color="primary", className="mt-2"),
            html.Div(id="channel-result", className="mt-2"),
        ])], className="mb-4 shadow-sm"),
        dbc.Card([dbc.CardHeader(html.Strong("Scheduled reports")), dbc.CardBody([
            html.P("A report holds the events since the previous one, in the chosen format, "
                   "mailed as an attachment on a cron schedule read in its time zone.",
                   className="text-muted small"),
            dbc.Alert(f"Reports cannot be mailed now: {mail}.", color="warning",
                      id="mail-problem") if mail else None,
            dcc.Loading(html.Div(_schedule_list(), id="schedule-list")),
            html.Hr(),
            html.H6("Schedule a report"),
            dbc.Row([
                dbc.Col([dbc.Label("Name"), dbc.Input(id="sched-name", maxlength=200,
                                                      placeholder="e.g. Weekly for the CISO")],
                        md=4),
                dbc.Col([dbc.Label("Cron"),
                         dbc.Input(id="sched-cron", value="0 8 * * 1",
                                   placeholder="0 8 * * 1"),
                         dbc.FormText("minute hour day month weekday")], md=3),
                dbc.Col([dbc.Label("Time zone"), dbc.Select(
                    id="sched-zone", options=ZONES, value="UTC")], md=3),
                dbc.Col([dbc.Label("Format"), dbc.Select(
                    id="sched-format", options=data.export_formats(), value="pdf")], md=2),
                dbc.Col([dbc.Label("Recipients (comma-separated)"),
                         dbc.Input(id="sched-recipients",
                                   placeholder="ciso@example.com, audit@example.com")], md=8),
                dbc.Col([dbc.Label("Only severities"), dcc.Dropdown(
                    id="sched-severity", options=SEVERITIES, multi=True,
                    placeholder="all")], md=4),
            ], className="g-2"),
            dbc.Button("Add schedule", id="sched-add", color="primary", className="mt-2"),
            html.Div(id="sched-result", className="mt-2"),
        ])], className="shadow-sm"),
    ]


def _config_fields(channel) -> list:
    if channel is None:
        return [dbc.Alert("No notification channel is installed.", color="secondary")]
    schema = channel.config_schema or {}
    required = set(schema.get("required", []))
    fields = []
    for key, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        placeholder = "one or more, comma-separated" if kind == "array" else ""
        fields.append(dbc.Col([
            dbc.Label(key + ("" if key in required else " (optional)")),
            dbc.Input(id={"type": "channel-field", "key": key},
                      type="password" if prop.get("writeOnly") else "text",
                      placeholder=placeholder, autoComplete="off", className=f"cfg-{key}"),
            dbc.FormText(prop.get("description", "")),
        ], md=6))
    return [dbc.Row(fields, className="g-2")]


def _config_value(prop: dict, raw: str | None):
    if raw is None or raw.strip() == "":
        return None
    kind = prop.get("type")
    if kind == "array":
        return [part.strip() for part in raw.split(",") if part.strip()]
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw  # the schema check says what is wrong
    if kind == "boolean":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return raw.strip()


def _channel_list():
    rows = data.integrations()
    if not rows:
        return html.P("No channels yet: alerts stay in Trailseal. Add one below.",
                      className="text-muted mb-0", id="channels-empty")
    body = []
    for i in rows:
        dead = data.dead_letters(i["id"])
        shown = ", ".join(f"{k}: {v}" for k, v in i["config"].items()
                          if not isinstance(v, dict | list)) or "—"
        body.append(html.Tr([
            html.Td(html.Strong(i["name"])), html.Td(i["type"]),
            html.Td(i["min_severity"]), html.Td(shown, className="small text-break"),
            html.Td(dbc.Badge(f"{len(dead)} dead letters", color="danger") if dead
                    else html.Span("none", className="text-muted small")),
            html.Td([dbc.Button("Test", id={"type": "channel-test", "id": i["id"]},
                                size="sm", color="outline-primary", className="me-2"),
                     dbc.Button("Delete", id={"type": "channel-delete", "id": i["id"]},
                                size="sm", color="outline-danger")], className="text-nowrap"),
        ], className="channel-row"))
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in (
        "Name", "Type", "Min. severity", "Destination", "Dead letters", "")])),
        html.Tbody(body)], size="sm", hover=True, responsive=True, className="mb-0")


def _schedule_list():
    rows = data.report_schedules()
    if not rows:
        return html.P("No reports scheduled yet. Add one below.", className="text-muted mb-0",
                      id="schedules-empty")
    body = [html.Tr([
        html.Td(html.Strong(s["name"])), html.Td(html.Code(s["cron"])),
        html.Td(s["timezone"]), html.Td(s["format"].upper()),
        html.Td(", ".join(s["recipients"]), className="small text-break"),
        html.Td((s.get("next_run") or "—")[:16].replace("T", " ")),
        html.Td(_last_run(s)),
        html.Td([dbc.Button("Run now", id={"type": "sched-run", "id": s["id"]}, size="sm",
                            color="outline-primary", className="me-2"),
                 dbc.Button("Delete", id={"type": "sched-delete", "id": s["id"]}, size="sm",
                            color="outline-danger")], className="text-nowrap"),
    ], className="schedule-row") for s in rows]
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in (
        "Name", "Cron", "Zone", "Format", "Recipients", "Next run (UTC)", "Last run", "")])),
        html.Tbody(body)], size="sm", hover=True, responsive=True, className="mb-0")


def _last_run(s: dict):
    if not s.get("last_run"):
        return html.Span("not yet", className="text-muted small")
    colour = {"sent": "success", "failed": "danger"}.get(s.get("last_status"), "secondary")
    return html.Span([dbc.Badge(s.get("last_status") or "?", color=colour, className="me-1"),
                      html.Span(s["last_run"][:16].replace("T", " "), className="small"),
                      html.Div(s.get("last_error") or "", className="small text-danger")])


def _pressed() -> bool:
    """Whether a button was pressed: redrawing a list adds buttons, which also calls the
    callback, with no clicks."""
    return bool(ctx.triggered and ctx.triggered[0].get("value"))


@callback(Output("channel-config", "children"), Input("channel-kind", "value"),
          prevent_initial_call=True)
def _kind_changed(kind):
    return _config_fields(data.channel_kinds().get(kind))


@callback(Output("channel-result", "children"), Output("channel-list", "children"),
          Output("channel-name", "value"),
          Input("channel-add", "n_clicks"),
          Input({"type": "channel-test", "id": ALL}, "n_clicks"),
          Input({"type": "channel-delete", "id": ALL}, "n_clicks"),
          State("channel-kind", "value"), State("channel-name", "value"),
          State("channel-severity", "value"),
          State({"type": "channel-field", "key": ALL}, "value"),
          State({"type": "channel-field", "key": ALL}, "id"),
          prevent_initial_call=True)
def _channel_action(add, tests, deletes, kind, name, severity, values, ids):
    trigger = ctx.triggered_id
    if trigger is None or not _pressed():
        return no_update, no_update, no_update
    try:
        if trigger == "channel-add":
            channel = data.channel_kinds().get(kind)
            props = (channel.config_schema or {}).get("properties", {}) if channel else {}
            config = {}
            for field_id, raw in zip(ids, values, strict=True):
                value = _config_value(props.get(field_id["key"], {}), raw)
                if value is not None:
                    config[field_id["key"]] = value
            made = data.add_integration({"type": kind, "name": name or "", "config": config,
                                         "min_severity": severity})
            message = dbc.Alert(f"Added {made['name']} ({made['type']}). Use Test to send a "
                                "test message.", color="success", id="channel-done")
        elif trigger["type"] == "channel-test":
            result = data.test_integration(trigger["id"])
            message = (dbc.Alert("Test message delivered.", color="success", id="channel-done")
                       if result["delivered"] else
                       dbc.Alert(f"Test message not delivered: {result['error']}",
                                 color="danger", id="channel-done"))
        else:
            data.remove_integration(trigger["id"])
            message = dbc.Alert("Channel deleted.", color="secondary", id="channel-done")
    except Exception as exc:  # noqa: BLE001 - shown in the page, never a traceback
        return dbc.Alert(f"Not done: {_problem(exc)}", color="danger", id="channel-error"), \
            no_update, no_update
    return message, _channel_list(), "" if trigger == "channel-add" else no_update


@callback(Output("sched-result", "children"), Output("schedule-list", "children"),
          Output("sched-name", "value"),
          Input("sched-add", "n_clicks"),
          Input({"type": "sched-run", "id": ALL}, "n_clicks"),
          Input({"type": "sched-delete", "id": ALL}, "n_clicks"),
          State("sched-name", "value"), State("sched-cron", "value"),
          State("sched-zone", "value"), State("sched-format", "value"),
          State("sched-recipients", "value"), State("sched-severity", "value"),
          prevent_initial_call=True)
def _schedule_action(add, runs, deletes, name, cron, zone, fmt, recipients, severity):
    trigger = ctx.triggered_id
    if trigger is None or not _pressed():
        return no_update, no_update, no_update
    try:
        if trigger == "sched-add":
            body = {"name": name or "", "cron": cron or "", "timezone": zone, "format": fmt,
                    "recipients": [r.strip() for r in (recipients or "").split(",")
                                   if r.strip()],
                    "filters": {"severity": severity} if severity else {}}
            made = data.add_schedule(body)
            message = dbc.Alert(f"Scheduled {made['name']}: first report "
                                f"{made['next_run'][:16].replace('T', ' ')} UTC.",
                                color="success", id="sched-done")
        elif trigger["type"] == "sched-run":
            data.run_schedule(trigger["id"])
            message = dbc.Alert("A worker is writing and mailing the report now; its status "
                                "shows under Last run.", color="success", id="sched-done")
        else:
            data.remove_schedule(trigger["id"])
            message = dbc.Alert("Schedule deleted.", color="secondary", id="sched-done")
    except Exception as exc:  # noqa: BLE001 - shown in the page, never a traceback
        return dbc.Alert(f"Not done: {_problem(exc)}", color="danger", id="sched-error"), \
            no_update, no_update
    return message, _schedule_list(), "" if trigger == "sched-add" else no_update
