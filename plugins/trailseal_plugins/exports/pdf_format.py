"""The PDF export: a report of the exported events. Cover (tenant, period, filters),
executive summary (trends, key findings, anomalies), statistics, charts (events per day,
anomalies per day, categories), the events with their scores, tags and risk, and the chain's
verification with its head hash; every page numbered "page n of N"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as pdf_canvas
from reportlab.platypus import (
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from .narrative import offline_summary, summary_facts
from .statistics import SEVERITY_ORDER, ExportStatistics

PAGE = landscape(A4)
MARGIN = 14 * mm
INK = colors.HexColor("#1f2933")
ACCENT = colors.HexColor("#2563eb")
ANOMALY = colors.HexColor("#dc2626")
MUTED = colors.HexColor("#6b7280")
RISK_COLOURS = {"critical": colors.HexColor("#fecaca"), "high": colors.HexColor("#fed7aa")}

_styles = getSampleStyleSheet()
TITLE = ParagraphStyle("ts-title", parent=_styles["Title"], fontSize=26, leading=32,
                       textColor=INK, alignment=0)
H1 = ParagraphStyle("ts-h1", parent=_styles["Heading1"], textColor=INK, fontSize=16,
                    spaceBefore=4, spaceAfter=6)
H2 = ParagraphStyle("ts-h2", parent=_styles["Heading2"], textColor=INK, fontSize=12,
                    spaceBefore=8, spaceAfter=3)
BODY = ParagraphStyle("ts-body", parent=_styles["BodyText"], fontSize=9.5, leading=13,
                      textColor=INK)
BULLET = ParagraphStyle("ts-bullet", parent=BODY, leftIndent=10, bulletIndent=0)
SMALL = ParagraphStyle("ts-small", parent=BODY, fontSize=8, leading=10, textColor=MUTED)
MONO = ParagraphStyle("ts-mono", parent=BODY, fontName="Courier", fontSize=8.5, leading=11)

# The events table: (heading, width in mm, characters kept before an ellipsis).
EVENT_COLUMNS = (("Seq", 16, 12), ("Occurred (UTC)", 30, 19), ("Event type", 42, 30),
                 ("Actor", 34, 24), ("Entity", 44, 32), ("Severity", 17, 9),
                 ("Category", 32, 22), ("Risk", 15, 9), ("Score", 14, 6), ("Tags", 25, 40))


def _clip(text: Any, keep: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= keep else text[: keep - 1] + "…"


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(text), style)


class _NumberedCanvas(pdf_canvas.Canvas):
    """Holds every page until the end so each footer can say "page n of N"."""

    footer_left = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self):  # noqa: N802 - reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont("Helvetica", 7.5)
            self.setFillColor(MUTED)
            self.drawString(MARGIN, 8 * mm, self.footer_left)
            self.drawRightString(PAGE[0] - MARGIN, 8 * mm, f"Page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def _day_labels(days: list[str]) -> list[str]:
    """Every day's label, blank but for about twelve evenly spaced ones."""
    step = max(1, -(-len(days) // 12))
    return [d[5:] if i % step == 0 else "" for i, d in enumerate(days)]


def _bar_chart(title: str, days: list[str], values: list[int], colour) -> Drawing:
    width, height = PAGE[0] - 2 * MARGIN, 50 * mm
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 10, title, fontName="Helvetica-Bold", fontSize=10,
                       fillColor=INK))
    chart = VerticalBarChart()
    chart.x, chart.y = 30, 22
    chart.width, chart.height = width - 40, height - 42
    chart.data = [values or [0]]
    chart.bars[0].fillColor = colour
    chart.bars[0].strokeColor = None
    chart.categoryAxis.categoryNames = _day_labels(days) or [""]
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.angle = 0
    chart.categoryAxis.labels.boxAnchor = "n"
    chart.valueAxis.valueMin = 0
    peak = max(values or [0])
    chart.valueAxis.valueMax = max(1, peak)
    chart.valueAxis.valueStep = max(1, -(-max(1, peak) // 5))
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.gridStrokeColor = colors.HexColor("#e5e7eb")
    chart.valueAxis.visibleGrid = True
    drawing.add(chart)
    return drawing


def _category_chart(categories: list[tuple[str, int]]) -> Drawing:
    width = PAGE[0] - 2 * MARGIN
    rows = max(1, len(categories))
    height = 24 + rows * 11 + 20
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 10, "Events by category", fontName="Helvetica-Bold",
                       fontSize=10, fillColor=INK))
    chart = HorizontalBarChart()
    chart.x, chart.y = 120, 10
    chart.width, chart.height = width - 170, height - 34
    names = [name.replace("_", " ") for name, _ in categories] or ["none"]
    values = [count for _, count in categories] or [0]
    # the chart draws the first category at the bottom: reverse so the largest is on top
    chart.data = [list(reversed(values))]
    chart.categoryAxis.categoryNames = list(reversed(names))
    chart.categoryAxis.labels.fontSize = 8
    chart.bars[0].fillColor = ACCENT
    chart.bars[0].strokeColor = None
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max(1, max(values))
    chart.valueAxis.labels.fontSize = 7
    chart.barLabelFormat = "%d"
    chart.barLabels.fontSize = 7
    chart.barLabels.boxAnchor = "w"
    chart.barLabels.dx = 3
    drawing.add(chart)
    return drawing


def _table(rows: list[list[Any]], widths: list[float], header: bool = True,
           extra: list[tuple] | None = None) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 8.5),
             ("TEXTCOLOR", (0, 0), (-1, -1), INK),
             ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#e5e7eb")),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5),
                  ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2ff"))]
    table.setStyle(TableStyle(style + (extra or [])))
    return table


def _cover(context: dict[str, Any], stats: ExportStatistics) -> list:
    tenant = context.get("tenant") or {}
    period = context.get("period") or {}
    start = period.get("start") or (f"{stats.first} (first event)" if stats.first else "—")
    end = period.get("end") or (f"{stats.last} (last event)" if stats.last else "—")
    filters = context.get("filters") or {}
    shown = [[key.replace("_", " "), ", ".join(map(str, v)) if isinstance(v, list) else str(v)]
             for key, v in filters.items() if key not in ("start", "end")]
    flow = [Spacer(1, 28 * mm), _p("Audit trail report", TITLE), Spacer(1, 4 * mm),
            _p(f"{tenant.get('name') or tenant.get('slug') or ''}", H1), Spacer(1, 8 * mm)]
    facts = [["Tenant", f"{tenant.get('name', '')} ({tenant.get('slug', '')})"],
             ["Period from", start], ["Period to", end],
             ["Events", f"{stats.total:,}"],
             ["Generated", f"{context.get('generated_at', '')} by "
                           f"{context.get('generated_by', '')}"],
             ["Chain head (seq)", str(context.get("head_seq", ""))]]
    flow.append(_table(facts, [45 * mm, 160 * mm], header=False,
                       extra=[("FONT", (0, 0), (0, -1), "Helvetica-Bold", 9),
                              ("FONT", (1, 0), (1, -1), "Helvetica", 9)]))
    flow += [Spacer(1, 6 * mm), _p("Filters", H2)]
    if shown:
        flow.append(_table([["Filter", "Value"], *shown], [45 * mm, 160 * mm]))
    else:
        flow.append(_p("None: every event of the period."))
    return flow


def _summary(context: dict[str, Any], stats: ExportStatistics) -> list:
    flow = [PageBreak(), _p("Executive summary", H1)]
    narrative = context.get("narrative")
    if isinstance(narrative, str) and narrative.strip():
        flow += [_p(paragraph) for paragraph in narrative.split("\n\n") if paragraph.strip()]
        return flow
    sections = offline_summary(summary_facts(stats, context))
    for key, heading in (("trends", "Trends"), ("findings", "Key findings"),
                         ("anomalies", "Anomalies")):
        flow.append(_p(heading, H2))
        flow += [Paragraph(escape(line), BULLET, bulletText="•") for line in sections[key]]
    return flow


def _statistics(stats: ExportStatistics) -> list:
    flow = [Spacer(1, 4 * mm), _p("Statistics", H1)]

    def block(title: str, counter, order=None, keep: int = 24) -> list[list[str]]:
        keys = order if order else [k for k, _ in counter.most_common(8)]
        rows = [[title, "Events", "Share"]]
        for key in keys:
            if counter.get(key):
                rows.append([_clip(str(key).replace("_", " "), keep), f"{counter[key]:,}",
                             f"{100 * counter[key] / max(1, stats.total):.1f}%"])
        return rows if len(rows) > 1 else rows + [["—", "0", ""]]

    narrow, wide = [24 * mm, 16 * mm, 14 * mm], [42 * mm, 16 * mm, 14 * mm]
    tables = [
        _table(block("Severity", stats.severities, SEVERITY_ORDER), narrow),
        _table(block("Risk level", stats.risks, ("low", "medium", "high", "critical")),
               narrow),
        _table(block("Event type", stats.event_types, keep=26), wide),
        _table(block("Actor", stats.actors, keep=24), wide),
    ]
    # 269 mm across: the page's width between the margins
    grid = Table([tables], colWidths=[58 * mm, 58 * mm, 76 * mm, 76 * mm], hAlign="LEFT")
    grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                              ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    totals = [["Events", f"{stats.total:,}"], ["Scored for anomalies", f"{stats.scored:,}"],
              ["Flagged anomalies", f"{len(stats.anomalies):,}"],
              ["Awaiting review", f"{stats.review_required:,}"]]
    flow += [_table(totals, [45 * mm, 30 * mm], header=False,
                    extra=[("FONT", (0, 0), (0, -1), "Helvetica-Bold", 8.5)]),
             Spacer(1, 4 * mm), grid]
    return [KeepTogether(flow)]


def _charts(stats: ExportStatistics) -> list:
    days = stats.days()
    return [PageBreak(), _p("Charts", H1),
            _bar_chart("Events per day", days, [stats.per_day.get(d, 0) for d in days], ACCENT),
            Spacer(1, 3 * mm),
            _bar_chart("Anomalies per day", days,
                       [stats.anomalies_per_day.get(d, 0) for d in days], ANOMALY),
            Spacer(1, 3 * mm),
            KeepTogether([_category_chart(stats.categories.most_common(10))])]


def _event_rows(events: list[dict[str, Any]]) -> tuple[list[list[str]], list[tuple]]:
    rows = [[heading for heading, _, _ in EVENT_COLUMNS]]
    marks: list[tuple] = []
    for n, event in enumerate(events, start=1):
        insights = event.get("insights") or {}
        score = insights.get("anomaly_score")
        tags = sorted(set(event.get("tags") or []) | set(insights.get("tags") or []))
        values = (event["seq"], event["occurred_at"][:19].replace("T", " "),
                  event["event_type"], event["actor"]["id"],
                  f"{event['entity']['type']}:{event['entity']['id']}", event["severity"],
                  (insights.get("category") or "").replace("_", " "),
                  insights.get("risk_level") or "", f"{score:.2f}" if score is not None else "",
                  ", ".join(tags))
        rows.append([_clip(v, keep) for v, (_, _, keep) in zip(values, EVENT_COLUMNS,
                                                               strict=True)])
        if insights.get("is_anomaly"):
            marks.append(("TEXTCOLOR", (8, n), (8, n), ANOMALY))
            marks.append(("FONT", (8, n), (8, n), "Helvetica-Bold", 7))
        risk = insights.get("risk_level")
        if risk in RISK_COLOURS:
            marks.append(("BACKGROUND", (7, n), (7, n), RISK_COLOURS[risk]))
    return rows, marks


def _events(events: list[dict[str, Any]]) -> list:
    flow = [PageBreak(), _p("Events", H1),
            _p("Oldest first. Score: anomaly score (red when flagged); tags: the event's and "
               "the classifier's.", SMALL), Spacer(1, 2 * mm)]
    if not events:
        return flow + [_p("No event matches the export's filters.")]
    rows, marks = _event_rows(events)
    table = Table(rows, colWidths=[w * mm for _, w, _ in EVENT_COLUMNS], repeatRows=1,
                  hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), "Helvetica", 7),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2ff")),
        ("TEXTCOLOR", (0, 0), (-1, -1), INK),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#e5e7eb")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        *marks,
    ]))
    return flow + [table]


def _chain(context: dict[str, Any]) -> list:
    chain = context.get("chain")
    flow = [Spacer(1, 6 * mm), _p("Chain verification", H1)]
    if not chain:
        return flow + [_p("The chain was not verified for this export.")]
    if chain.get("intact"):
        verdict = (f"Intact: {chain.get('events_checked', 0):,} events checked, every hash "
                   "links to the one before it.")
    else:
        verdict = (f"BROKEN at seq {chain.get('broken_seq')} (event "
                   f"{chain.get('broken_event_id')}): {chain.get('reason')}. "
                   f"{chain.get('detail') or ''}")
    rows = [["Status", verdict], ["Head seq", str(chain.get("head_seq", ""))]]
    flow.append(_table(rows, [30 * mm, 230 * mm], header=False,
                       extra=[("FONT", (0, 0), (0, -1), "Helvetica-Bold", 9),
                              ("TEXTCOLOR", (1, 0), (1, 0),
                               INK if chain.get("intact") else ANOMALY)]))
    flow += [_p("Head hash (SHA-256)", H2), _p(str(chain.get("head_hash", "")), MONO),
             _p("Anyone can check the head hash against the chain: "
                "GET /api/v1/chain/verify reports the same value while no event is appended.",
                SMALL)]
    return flow + _checkpoint(context)


def _checkpoint(context: dict[str, Any]) -> list:
    """The signed checkpoint that covers the export: what an auditor checks the events
    against without trusting the server (docs/auditors.md)."""
    checkpoint = context.get("checkpoint")
    flow: list = [_p("Signed checkpoint", H2)]
    if not checkpoint:
        return flow + [_p("No signed checkpoint covers these events yet (checkpoints are "
                          "made hourly, or with POST /api/v1/checkpoints).")]
    size = checkpoint.get("tree_size")
    if checkpoint.get("covers_all"):
        covers = f"every exported event (seq 1 to {size:,})"
    else:
        covers = (f"the exported events up to seq {size:,}; later ones are covered by the "
                  "next checkpoint")
    rows = [["Key name", str(checkpoint.get("key_name", ""))], ["Tree size", f"{size}"],
            ["Root (SHA-256)", str(checkpoint.get("root", ""))],
            ["Signed at", str(checkpoint.get("created_at", ""))], ["Covers", covers]]
    flow.append(_table(rows, [30 * mm, 230 * mm], header=False,
                       extra=[("FONT", (0, 0), (0, -1), "Helvetica-Bold", 9)]))
    note = "<br/>".join(escape(line) for line in str(checkpoint.get("note", "")).split("\n"))
    flow += [_p("Signed note (C2SP tlog-checkpoint)", H2), Paragraph(note, MONO),
             _p("Check its signature with the public key (GET /api/v1/checkpoints/public-key)"
                " and each event's inclusion with GET /api/v1/events/{id}/proof, or the whole "
                "export with a bundle and trailseal-verify.", SMALL)]
    return flow


class PdfExporter:
    """A PDF report (A4 landscape) of the exported events."""

    name = "pdf"
    media_type = "application/pdf"
    extension = "pdf"

    def export(self, events: Iterable[dict[str, Any]], context: dict[str, Any],
               out: IO[bytes]) -> None:
        """Write the report to ``out`` (the events are held in memory: the core caps how
        many a document export may hold)."""
        stats = ExportStatistics()
        kept = []
        for event in events:
            stats.add(event)
            kept.append(event)
        tenant = context.get("tenant") or {}
        doc = SimpleDocTemplate(out, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN,
                                topMargin=MARGIN, bottomMargin=16 * mm,
                                title=f"Audit trail report — {tenant.get('name', '')}",
                                author="Trailseal", subject="Audit trail export")
        story = [*_cover(context, stats), *_summary(context, stats), *_statistics(stats),
                 *_charts(stats), *_events(kept), *_chain(context)]
        footer = (f"Trailseal audit trail report · {tenant.get('name', '')} · generated "
                  f"{context.get('generated_at', '')}")
        canvas_class = type("FooterCanvas", (_NumberedCanvas,), {"footer_left": footer})
        doc.build(story, canvasmaker=canvas_class)
