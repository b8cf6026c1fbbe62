"""A realistic, reproducible data set of audit events for three fictional SaaS tenants.

Each tenant gets a fixed cast of people (with stable roles, departments, IP addresses and
browsers) plus a few service accounts, and weeks of activity that follows a working-week
rhythm in the tenant's time zone: busy on weekday business hours, quiet at night and at
weekends, with background jobs running around the clock.

A few security incidents are mixed into every tenant (bulk deletions at night from an unknown
address, a password-guessing burst ending with MFA switched off, a self-granted admin role
followed by large exports, ...). Their events look like any other event of the same kind, but
their ``request_id`` is derived from their content, so :func:`planted_incidents` can find
them again in the list returned by :func:`generate_events`.

Every event is a plain dict shaped exactly like the body of ``POST /api/v1/events``
(:class:`trailseal.schemas.EventIn`). Output depends only on the arguments: the generator never
touches the global random generator and never uses Python's salted ``hash()``.

This module is the public face of the generator; the work is done by the modules of
this package by subject: :mod:`.profiles` (tenants), :mod:`.cast` (people and services),
:mod:`.builders` and :mod:`.events` (single events), :mod:`.activity` (everyday activity,
:func:`generate_events`), :mod:`.planters` and :mod:`.incidents` (planted incidents).
"""

from __future__ import annotations

from .activity import generate_events
from .incidents import planted_incidents
from .profiles import DemoTenant, PlantedIncident, demo_tenants

__all__ = ["DemoTenant", "PlantedIncident", "demo_tenants", "generate_events", "planted_incidents"]
