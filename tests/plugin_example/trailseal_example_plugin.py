"""Example third-party plugin: a route, a CLI command and an ``event_ingested`` counter."""

from __future__ import annotations

import click
from flask import Blueprint, jsonify

from trailseal import hookimpl

bp = Blueprint("example_plugin", __name__)
INGESTED: list[int] = []


@bp.get("/example/ping")
def ping():
    return jsonify({"plugin": "example", "ingested_batches": len(INGESTED)})


@hookimpl
def register_routes(app):
    return [bp]


@hookimpl
def register_commands(cli):
    @cli.command("example-hello")
    def example_hello():
        """Say hello from the example plugin."""
        click.echo("hello from the example plugin")


@hookimpl
def event_ingested(tenant_id, event_ids, first_seq, last_seq):
    INGESTED.append(len(event_ids))
