"""The plugin manager: built-in plugins, entry-point loading, the disable list, and errors
that name the plugin at fault."""

from __future__ import annotations

import importlib
import logging
import warnings
from importlib.metadata import EntryPoint, entry_points

import pluggy

from . import hookspecs
from .errors import TrailsealError
from .hookspecs import hookimpl

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "trailseal"

# Built-in features are plugins, registered exactly like third-party ones (their hook
# implementations use ``trylast=True`` so an installed plugin can override them).
DEFAULT_PLUGINS = ("trailseal.builtin",)

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "PluginError", "describe_plugins",
           "disabled_names", "hookimpl", "make_plugin_manager"]


class PluginError(TrailsealError):
    """A plugin could not be loaded or implements a hook wrongly. The message names the
    plugin, its distribution and entry point, and how to disable it."""

    code = "plugin_error"


def disabled_names(spec: str | None) -> set[str]:
    return {name.strip() for name in (spec or "").split(",") if name.strip()}


def _describe(ep: EntryPoint) -> str:
    dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
    return f"plugin {ep.name!r} ({dist}, entry point {ep.group}:{ep.name} = {ep.value})"


def _failed(ep: EntryPoint, what: str, exc: BaseException) -> PluginError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PluginError(
        f"{_describe(ep)} {what}: {reason}. Disable it with "
        f"TRAILSEAL_DISABLE_PLUGINS={ep.name} (comma-separated with any others) until it is "
        "fixed.",
        {"plugin": ep.name, "entry_point": ep.value,
         "distribution": ep.dist.name if ep.dist is not None else None},
    )


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which distribution each entry-point plugin came from."""

    def __init__(self) -> None:
        super().__init__("trailseal")
        self.distributions: dict[str, str] = {}


def make_plugin_manager(disable: str | None = None,
                        load_entry_points: bool = True) -> PluginManager:
    """A plugin manager with the built-in plugins and every entry point of group
    ``trailseal`` loaded, except the names in ``disable``. Raises ``PluginError`` naming
    the plugin when one fails to import or implements a hook that does not exist."""
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    blocked = disabled_names(disable)
    for name in blocked:
        pm.set_blocked(name)
    for name in DEFAULT_PLUGINS:
        if name not in blocked:
            pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in blocked or pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # an import error of someone else's code
                raise _failed(ep, "failed to load", exc) from exc
            try:
                with warnings.catch_warnings():
                    # a reserved hook's FutureWarning is logged below, not printed
                    warnings.simplefilter("ignore", FutureWarning)
                    pm.register(plugin, name=ep.name)
                pm.check_pending()
            except pluggy.PluginValidationError as exc:
                raise _failed(ep, "implements a hook wrongly", exc) from exc
            if ep.dist is not None:
                pm.distributions[ep.name] = f"{ep.dist.name} {ep.dist.version}"
            for hook in pm.get_hookcallers(plugin) or []:
                if hook.name in hookspecs.RESERVED:
                    log.warning("%s implements %s, which nothing calls yet (reserved for %s)",
                                _describe(ep), hook.name, hookspecs.RESERVED[hook.name])
    pm.check_pending()
    return pm


def describe_plugins(pm: PluginManager) -> list[dict[str, object]]:
    """Name, module, distribution and hooks of every registered plugin."""
    out = []
    distributions = getattr(pm, "distributions", {})
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda np: np[0] or ""):
        if plugin is None:
            continue
        out.append(
            {
                "name": name,
                "module": getattr(plugin, "__name__", type(plugin).__name__),
                "distribution": distributions.get(name, ""),
                "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            }
        )
    return out
