"""Every hook in hookspecs.py is documented in docs/plugins.md with its exact signature, has a
docstring, and is marked reserved exactly when nothing in Trailseal calls it."""

import inspect
import re
from pathlib import Path

from trailseal import hookspecs
from trailseal.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"


def _hooks():
    pm = make_plugin_manager(load_entry_points=False)
    return pm, sorted(name for name in dir(pm.hook) if not name.startswith("_"))


def test_every_hook_is_documented_with_its_signature():
    pm, hooks = _hooks()
    text = DOC.read_text()
    assert len(hooks) >= 15
    for name in hooks:
        section = text.split(f"### `{name}`", 1)
        assert len(section) == 2, f"{name} is missing from docs/plugins.md"
        spec = getattr(hookspecs, name)
        signature = f"def {name}{inspect.signature(spec)}".replace("'", "")
        # the first code line of the hook's section is its exact signature
        assert section[1].split("```python\n", 1)[1].split("\n", 1)[0] == signature, name
        assert getattr(pm.hook, name).spec.argnames == tuple(inspect.signature(spec).parameters)


def test_every_hook_has_a_docstring():
    _, hooks = _hooks()
    for name in hooks:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_reserved_means_not_called():
    """A hook is marked reserved (warns on implementation) exactly when no module of the
    core calls it, and the guide's table says the same."""
    _, hooks = _hooks()
    source = "\n".join(p.read_text() for p in (ROOT / "platform" / "trailseal").rglob("*.py")
                       if p.name != "hookspecs.py")
    called = {name for name in hooks if re.search(rf"\.hook\.{name}\(", source)}
    assert set(hookspecs.RESERVED) == set(hooks) - called
    text = DOC.read_text()
    for name in hooks:
        row = re.search(rf"^\| `{name}` \| (.+?) \|", text, re.M)
        assert row, name
        assert ("reserved" in row.group(1)) == (name in hookspecs.RESERVED), name
