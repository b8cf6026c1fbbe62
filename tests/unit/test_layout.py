"""Layout rules of the source tree."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_platform_is_a_source_root_not_a_package():
    # A platform/__init__.py would shadow the stdlib ``platform`` module.
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_core_never_imports_plugins_or_dashboards():
    offenders = []
    for path in (ROOT / "platform" / "trailseal").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"trailseal_plugins", "trailseal_dashboards"}:
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_stdlib_platform_module_is_the_real_one():
    import platform

    assert hasattr(platform, "python_version")


def test_top_level_is_the_design_card_s():
    for name in ("platform", "plugins", "dashboards", "migrations", "tests", "setup.cfg",
                 "pyproject.toml", "docker-compose.yml", "README.md"):
        assert (ROOT / name).exists(), name
    # the Alembic scripts live only at the top (shipped as the package trailseal.migrations)
    assert (ROOT / "migrations" / "env.py").exists()
    assert not (ROOT / "platform" / "trailseal" / "migrations").exists()


def test_setup_cfg_holds_only_tool_settings():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    # metadata and options belong in pyproject.toml
    assert not {"metadata", "options"} & {s.split(".")[0] for s in cfg.sections()}
    assert cfg["flake8"]["max-line-length"] == "100"
