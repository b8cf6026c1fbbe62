"""Infrastructure below the services: PostgreSQL's binary COPY protocol (``copy_binary``),
helper processes (``helpers``), the embedded PostgreSQL and Valkey servers (``embedded``) and
the forwarding-header trust of the WSGI stack (``proxies``). Nothing here knows about
tenants, events or chains' meaning; services build on it, never the other way round."""
