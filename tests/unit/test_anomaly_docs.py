"""The analyst guide documents every anomaly feature as the detector names and explains it,
and the anomaly settings, hooks and commands the guides name exist."""

from __future__ import annotations

from pathlib import Path

from trailseal_plugins.anomaly.features import FEATURES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_feature_is_in_the_user_guide_as_the_code_describes_it():
    guide = (DOCS / "user-guide.md").read_text()
    for f in FEATURES:
        assert f"| `{f.name}` | {f.label} | {f.meaning} |" in guide, f.name


def test_the_guides_name_the_real_commands_and_model_type():
    admin = (DOCS / "admin-guide.md").read_text()
    api = (DOCS / "api.md").read_text()
    assert "trailseal train --tenant" in admin and "trailseal detect --tenant" in admin
    assert "anomaly.isolation_forest" in admin and "anomaly.isolation_forest" in api
