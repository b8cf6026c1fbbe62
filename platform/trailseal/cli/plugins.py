"""Plugins on the command line: ``trailseal plugins`` and the commands plugins register."""

from __future__ import annotations

import click

__all__ = ["add_plugin_commands", "plugins"]


@click.command()
def plugins() -> None:
    """List installed plugins and the hooks they implement."""
    from ..config import load_config
    from ..plugins import describe_plugins, make_plugin_manager

    pm = make_plugin_manager(load_config().get("DISABLE_PLUGINS"))  # PluginError: one line
    for info in describe_plugins(pm):
        dist = f" [{info['distribution']}]" if info["distribution"] else ""
        click.echo(f"{info['name']}{dist}: {', '.join(info['hooks']) or '(no hooks)'}")


def add_plugin_commands(group: click.Group) -> None:
    """Let every plugin add its commands to ``group`` (``register_commands``). When a plugin
    cannot be loaded, the core commands still work; the command that needs plugins (and
    `trailseal plugins`) reports the error as one line."""
    from ..config import load_config
    from ..plugins import PluginError, make_plugin_manager

    try:
        pm = make_plugin_manager(load_config().get("DISABLE_PLUGINS"))
    except PluginError as exc:
        group.plugin_error = exc
        return
    pm.hook.register_commands(cli=group)
