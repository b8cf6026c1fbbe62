"""WSGI entry point for production servers: ``gunicorn trailseal.wsgi:app``."""

from . import create_app

app = create_app()
