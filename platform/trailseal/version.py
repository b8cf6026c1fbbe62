"""The version of Trailseal (one place, importable from anywhere in the core)."""

__version__ = "0.1.0"
