"""REST API v1 (``/api/v1``): blueprints, request parsing, error handlers, OpenAPI."""
