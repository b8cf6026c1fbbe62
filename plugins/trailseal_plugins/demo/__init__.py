"""The demo: ``trailseal demo`` starts everything on the embedded services with three
fictional tenants and weeks of activity with planted incidents.

A first-party plugin, found through its entry point like any other
(``[project.entry-points.trailseal] demo = "trailseal_plugins.demo"``); disable it with
``TRAILSEAL_DISABLE_PLUGINS=demo``.
"""

from __future__ import annotations

import click

from trailseal import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add the ``demo`` command."""
    from .command import demo

    cli.add_command(demo)
