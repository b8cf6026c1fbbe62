"""Every hook in hookspecs.py is documented in docs/plugins.md and has a docstring."""

from pathlib import Path

from trailseal.plugins import make_plugin_manager

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_every_hook_is_documented():
    pm = make_plugin_manager(load_entry_points=False)
    text = DOC.read_text()
    hooks = [name for name in dir(pm.hook) if not name.startswith("_")]
    assert len(hooks) >= 15
    missing = [name for name in hooks if f"### `{name}`" not in text]
    assert missing == [], f"hooks missing from docs/plugins.md: {missing}"


def test_every_hook_has_a_docstring():
    from trailseal import hookspecs

    pm = make_plugin_manager(load_entry_points=False)
    for name in dir(pm.hook):
        if not name.startswith("_"):
            assert (getattr(hookspecs, name).__doc__ or "").strip(), name
