"""Analyst dashboard pages (a plugin of its own, mounted under /dash/)."""
