"""Browser-facing routes: sign-in, sign-out, the landing page, health and metrics."""
