"""The ``trailseal`` command: the group and ``main``. Commands live in modules by subject:
``admin`` (schema, tenants, users, API keys, data keys), ``ledger`` (verify, import),
``runtime`` (serve, worker, scheduler), ``plugins``, ``train`` (the group plugins add their
model training to); ``helpers`` holds what they share.

For plugins that add commands (``register_commands``), this package's public surface is
``make_app`` (the app, with one-line errors), ``serve_app`` (serve it as ``trailseal serve``
does), and for commands that supervise child processes ``EXIT_WITH_PARENT``,
``stop_on_sigterm`` and ``stop_children``."""

from __future__ import annotations

import logging
import signal

import click

from .admin import apikey, keys, migrate, tenant, usage, user
from .erasure import erase
from .helpers import TrailsealGroup, make_app
from .ledger import checkpoint, import_events, verify
from .plugins import add_plugin_commands, plugins
from .retention import retention
from .runtime import (
    EXIT_WITH_PARENT,
    exit_with_parent,
    scheduler,
    serve,
    serve_app,
    stop_children,
    stop_on_sigterm,
    worker,
)
from .search import search_index
from .tenant_deletion import tenant_deletion
from .train import train

__all__ = ["EXIT_WITH_PARENT", "cli", "main", "make_app", "serve_app", "stop_children",
           "stop_on_sigterm"]


@click.group(cls=TrailsealGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def cli(verbose: bool) -> None:
    """Trailseal: a tamper-evident, multi-tenant audit trail."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _command in (migrate, tenant, user, apikey, keys, verify, import_events, plugins, serve,
                 worker, scheduler, train, usage, checkpoint, retention, erase, search_index,
                 tenant_deletion):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``trailseal`` script and ``python -m trailseal``."""
    # A process told to stop while it is still starting exits through SystemExit, so its
    # exit handlers release the embedded services (commands may install their own handler).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # A shell without job control starts background commands (`trailseal demo &`, CI steps,
    # test runners started that way) with SIGINT ignored, and Python then leaves it ignored:
    # Ctrl-C or `kill -INT` would do nothing and `demo` would never stop its children.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exit_with_parent()
    add_plugin_commands(cli)
    cli()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
