"""Exports: CSV (streamed, formula injection neutralised) and PDF (a report with an executive
summary, statistics, charts, the events and the chain's verification).

A first-party plugin (entry point ``exports``) registered through ``export_formats`` like any
other exporter; the core's ``POST /api/v1/export/{name}`` serves whatever is registered.
Disable it with ``TRAILSEAL_DISABLE_PLUGINS=exports``.
"""

from __future__ import annotations

from trailseal import hookimpl

from .csv_format import CsvExporter


@hookimpl(trylast=True)
def export_formats():
    # reportlab (and Pillow) load with the plugin's hooks, not with the CSV writer, which
    # the CSV export's helper processes import by name
    from .pdf_format import PdfExporter

    return [CsvExporter(), PdfExporter()]
