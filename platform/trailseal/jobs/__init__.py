"""RQ jobs: plain module-level functions taking ids and JSON-safe values."""

from __future__ import annotations


def current_services():
    """The ``Trailseal`` facade of the app whose context the job runs in."""
    from flask import current_app

    return current_app.extensions["trailseal"]
