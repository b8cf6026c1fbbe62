"""The plugin manager: hook specs, entry-point loading and the disable list."""

from __future__ import annotations

import logging

import pluggy

from . import hookspecs

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("trailseal")
ENTRY_POINT_GROUP = "trailseal"


def disabled_names(spec: str | None) -> set[str]:
    return {name.strip() for name in (spec or "").split(",") if name.strip()}


def make_plugin_manager(disable: str | None = None, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with every entry point of group ``trailseal`` loaded except ``disable``."""
    pm = pluggy.PluginManager("trailseal")
    pm.add_hookspecs(hookspecs)
    from . import builtin

    pm.register(builtin, name="trailseal.builtin")
    blocked = disabled_names(disable)
    for name in blocked:
        pm.set_blocked(name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


def describe_plugins(pm: pluggy.PluginManager) -> list[dict[str, object]]:
    """Name, module, distribution and hooks of every registered plugin."""
    out = []
    dist_of = {plugin: dist for plugin, dist in pm.list_plugin_distinfo()}
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0] or ""):
        if plugin is None:
            continue
        dist = dist_of.get(plugin)
        out.append(
            {
                "name": name,
                "module": getattr(plugin, "__name__", type(plugin).__name__),
                "distribution": f"{dist.project_name} {dist.version}" if dist else "",
                "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            }
        )
    return out
