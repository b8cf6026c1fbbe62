"""The CSV export: one row per event, every field of the event and its insights, streamed in
chunks; cells that a spreadsheet would run as a formula are neutralised."""

from __future__ import annotations

import csv
import io
import operator
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from trailseal.types import EVENT_ROW_FIELDS

# Every field of the API's event object, flattened, then its insights: the event row's
# fields, so event rows are in column order already.
COLUMNS = EVENT_ROW_FIELDS
# A spreadsheet reads a cell starting with one of these as a formula (or a command, DDE);
# also after leading spaces, which some strip.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 200


_FIRST_CHECKED = frozenset(FORMULA_START) | {" "}


def neutralise(cell: str) -> str:
    """``cell`` with a ``'`` in front when a spreadsheet would take it for a formula: it
    starts with ``= + - @``, a tab or a carriage return, also after leading spaces. The
    quote shows as text and is the usual mark of "not a formula"; the value is otherwise
    kept as is."""
    # Most cells start with a letter or digit: one set lookup settles them.
    if cell and cell[0] in _FIRST_CHECKED and cell.lstrip(" ").startswith(FORMULA_START):
        return "'" + cell
    return cell


def _text(value: Any) -> str:
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is list or kind is dict:
        # lists and objects as JSON, so tags holding commas or semicolons stay exact
        return orjson.dumps(value).decode()
    return str(value)


def event_row(event: dict[str, Any]) -> list[str]:
    """The CSV cells of one API event object, in ``COLUMNS`` order, neutralised."""
    actor = event.get("actor") or {}
    entity = event.get("entity") or {}
    insights = event.get("insights") or {}
    values = (
        event["id"], event["seq"], event["occurred_at"], event["received_at"],
        event["event_type"], actor.get("id"), actor.get("type"), actor.get("role"),
        actor.get("department"), entity.get("type"), entity.get("id"), event["severity"],
        event.get("source"), event.get("tags") or [], event.get("ip_address"),
        event.get("user_agent"), event.get("action_details"), event.get("idempotency_key"),
        event["previous_hash"], event["hash"],
        insights.get("category"), insights.get("risk_level"),
        insights.get("tags") if insights else None, insights.get("anomaly_score"),
        insights.get("is_anomaly"), insights.get("review_required"),
        insights.get("ai_insights") if insights else None,
    )
    return [neutralise(_text(v)) for v in values]


_TAGS = COLUMNS.index("tags")
_BOOLS = {True: "true", False: "false"}


def row_cells(row: tuple) -> list[str]:
    """The CSV cells of one event row (``trailseal.types.EVENT_ROW_FIELDS``), neutralised:
    the same cells as ``event_row`` of the event object it flattens."""
    cells = ["" if v is None else v if type(v) is str else _BOOLS[v] if type(v) is bool
             else str(v) for v in row]
    if not cells[_TAGS]:
        cells[_TAGS] = "[]"  # the event object's tags, or an empty list
    first = _FIRST_CHECKED
    return [neutralise(c) if c[:1] in first else c for c in cells]


# What makes ``csv.writer`` (QUOTE_MINIMAL, CRLF) quote a cell.
_NEEDS_QUOTES = re.compile(r'[,"\r\n]').search


def csv_line(cells: list[str]) -> str:
    """One CSV record of ``cells`` with its CRLF, exactly as ``csv.writer(lineterminator=
    "\\r\\n")`` writes it, in about half its time: most cells need no quotes."""
    return ",".join(['"' + c.replace('"', '""') + '"' if _NEEDS_QUOTES(c) else c
                     for c in cells]) + "\r\n"


# The cells that usually need quotes (JSON, user agents): each is checked on its own. The
# others are checked together, joined, and go through ``row_cells`` and ``csv_line`` only
# when one of them needs quotes or neutralising.
_OFTEN_QUOTED = tuple(COLUMNS.index(c) for c in ("tags", "user_agent", "action_details",
                                                 "insight_tags", "ai_insights"))
_SELDOM_QUOTED = operator.itemgetter(*(n for n in range(len(COLUMNS))
                                       if n not in _OFTEN_QUOTED))
_T, _U, _D, _I, _A = _OFTEN_QUOTED
# A cell starting with a formula character or a space, in cells joined by U+001F.
_FORMULA_AFTER_SEPARATOR = re.compile("\x1f[-=+@\t\r ]").search


def _other(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _quoted(cell: str) -> str:
    if '"' in cell or "," in cell or "\n" in cell or "\r" in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def rows_text(rows: Iterable[tuple]) -> str:
    """The CSV records of event rows, each with its CRLF: exactly
    ``"".join(csv_line(row_cells(r)) for r in rows)``, in about half its time.

    Two searches over the row's cells joined settle most rows at C speed: a cell that may
    need neutralising starts right after a separator with a formula character or a space
    (one regular expression), and the cells other than the five often quoted need no quotes
    when their joined text has no quote, comma or line break (``in``, a ``memchr`` each).
    Any row that does not pass goes through ``row_cells`` and ``csv_line``."""
    out = []
    append = out.append
    seldom = _SELDOM_QUOTED
    for row in rows:
        cells = [v if type(v) is str else _other(v) for v in row]
        if len(cells) != len(COLUMNS):
            append(csv_line(row_cells(row)))
            continue
        joined = "\x1f" + "\x1f".join(cells)
        plain = "\x1f".join(seldom(cells))
        if (_FORMULA_AFTER_SEPARATOR(joined) is not None or '"' in plain or "," in plain
                or "\n" in plain or "\r" in plain):
            append(csv_line(row_cells(row)))
            continue
        cells[_T] = _quoted(cells[_T]) if cells[_T] else "[]"  # as ``row_cells``
        cells[_U] = _quoted(cells[_U])
        cells[_D] = _quoted(cells[_D])
        cells[_I] = _quoted(cells[_I])
        cells[_A] = _quoted(cells[_A])
        append(",".join(cells) + "\r\n")
    return "".join(out)


class CsvExporter:
    """RFC 4180 CSV, UTF-8, a header row, CRLF line ends, streamed."""

    name = "csv"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    def stream(self, events: Iterable[dict[str, Any]], context: dict[str, Any]
               ) -> Iterator[bytes]:
        """The file in chunks of ``ROWS_PER_CHUNK`` rows (the header first)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        rows = 0
        for event in events:
            writer.writerow(event_row(event))
            rows += 1
            if rows % ROWS_PER_CHUNK == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    def stream_rows(self, batches: Iterable[list[tuple]], context: dict[str, Any]
                    ) -> Iterator[bytes]:
        """The file from event rows (the core's fast path), in chunks of at most
        ``ROWS_PER_CHUNK`` rows; the same bytes as ``stream`` of the same events."""
        yield csv_line(list(COLUMNS)).encode()
        for batch in batches:
            for start in range(0, len(batch), ROWS_PER_CHUNK):
                yield rows_text(batch[start:start + ROWS_PER_CHUNK]).encode()

    # The core's fast path may run this in helper processes (importable by name).
    row_writer = staticmethod(rows_text)

    def stream_text(self, texts: Iterable[str], context: dict[str, Any]) -> Iterator[bytes]:
        """The file from the text ``row_writer`` wrote of the events, page by page (the
        core's fast path on several cores); the same bytes as ``stream``."""
        yield csv_line(list(COLUMNS)).encode()
        for text in texts:
            yield text.encode()

    def export(self, events: Iterable[dict[str, Any]], context: dict[str, Any],
               out: IO[bytes]) -> None:
        """Write the whole file to ``out``."""
        for chunk in self.stream(events, context):
            out.write(chunk)
