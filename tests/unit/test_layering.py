"""The core's modules import only downward, in these layers (lowest first), and no module
imports another that imports it back (no import circle). ``if TYPE_CHECKING`` imports
(annotations only) do not count."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "platform" / "trailseal"

# Module (first name under ``trailseal``) -> layer. A module may import its own layer or
# lower ones.
LAYERS = {
    **dict.fromkeys(("errors", "config", "types", "hookspecs", "schemas", "version",
                     "rules"), 0),
    **dict.fromkeys(("infra", "db"), 1),
    **dict.fromkeys(("services", "tables", "plugins"), 2),
    "core": 3,
    **dict.fromkeys(("auth", "jobs", "builtin"), 4),
    **dict.fromkeys(("api", "web"), 5),
    **dict.fromkeys(("cli", "testing", "wsgi", "__init__", "__main__"), 6),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every trailseal module ``path`` imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("trailseal"):
                if target == "trailseal" or node.module is None:
                    # "from . import x" may name a module or a name of the package
                    for alias in node.names:
                        sub = f"{target}.{alias.name}"
                        found.add(sub if _exists(sub) else target)
                else:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("trailseal"))
    # trailseal_verify is a package of its own (the standalone verifier), below the core
    return {f for f in found if f != name and f.split(".")[0] == "trailseal"}


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (CORE / rel).with_suffix(".py").exists() or (CORE / rel / "__init__.py").exists()


def _layer(module: str) -> int:
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "__init__"
    assert first in LAYERS, f"{module}: give it a layer in LAYERS"
    return LAYERS[first]


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in CORE.rglob("*.py")
            if "migrations" not in p.parts}


def test_modules_import_only_downward():
    upward = []
    for module, targets in _graph().items():
        for target in targets:
            if _layer(target) > _layer(module):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_circles():
    graph = _graph()
    visiting, done, cycles = set(), set(), []

    def visit(node, path):
        if node in visiting:
            cycles.append(" -> ".join(path[path.index(node):] + [node]))
            return
        if node in done or node not in graph:
            return
        visiting.add(node)
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        visiting.discard(node)
        done.add(node)

    for module in sorted(graph):
        visit(module, [])
    # a package's __init__ importing its own submodules (and them importing a name back)
    # is how packages expose their surface; any other circle is a design error
    assert cycles == []


def test_the_core_never_imports_plugins_or_dashboards():
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        assert "trailseal_plugins" not in text.replace("# trailseal_plugins", ""), path
        assert "import trailseal_dashboards" not in text, path


# What plugins may import from the core: its documented public surface (docs/plugins.md).
PUBLIC = {
    "trailseal": {"hookimpl", "require_permission", "create_app"},
    "trailseal.types": None,  # every name
    "trailseal.errors": None,
    "trailseal.rules": {"words", "compile_tag_rules", "validate_tag_rules",
                        "BUILTIN_TAG_RULES", "RuleError"},
    "trailseal.jobs": {"current_services", "enrich_events"},
    "trailseal.cli": {"make_app", "serve_app", "EXIT_WITH_PARENT", "stop_on_sigterm",
                      "stop_children"},
}


def test_plugins_use_only_the_public_surface():
    roots = [CORE.parents[1] / "plugins", *(CORE.parents[2] / "examples").glob("*/*_plugin")]
    reaching = []
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trailseal"):
                    if node.module.startswith("trailseal_"):
                        continue  # the plugin's own package
                    allowed = PUBLIC.get(node.module, set())
                    names = {a.name for a in node.names}
                    if allowed is not None and not names <= allowed:
                        reaching.append(f"{path.name}: from {node.module} import "
                                        f"{', '.join(sorted(names - allowed))}")
                elif isinstance(node, ast.Import):
                    reaching += [f"{path.name}: import {a.name}" for a in node.names
                                 if a.name.startswith("trailseal.")]
    assert reaching == []
