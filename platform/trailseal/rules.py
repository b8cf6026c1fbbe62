"""Business-rule tags: conditions on an event, written as data, that tag it when they hold
(``privilege-change``, ``off-hours``, ``failed-action`` …).

The built-in rules (``BUILTIN_TAG_RULES``) apply to every tenant; a tenant adds its own
through ``PUT /api/v1/rules/tags``. A rule is::

    {"tag": "large-refund", "description": "Refunds of 5,000 or more",
     "when": {"all": [{"field": "event_type", "op": "has_word", "value": ["refund"]},
                      {"field": "details.amount", "op": "gte", "value": 5000}]}}

A condition is ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": condition}`` or a test
``{"field", "op", "value"}``. Fields: the event's ``event_type``, ``actor_id``,
``actor_type``, ``actor_role``, ``actor_department``, ``entity_type``, ``entity_id``,
``severity``, ``source``, ``tags``, ``hour`` (0–23) and ``weekday`` (0 Monday … 6 Sunday) of
``occurred_at`` in UTC, and ``details.<key>[.<key>…]`` inside ``action_details``. Tests:
``equals``, ``not_equals``, ``in`` (a list), ``contains`` and ``starts_with`` (text, ignoring
case), ``equals``/``not_equals``/``in`` compare text ignoring case, ``has_word`` (any of a list of words among the field's words: ``CreateAccessKey`` and
``create_access_key`` both have the words create, access, key), ``gt``/``gte``/``lt``/``lte``
(numbers) and ``exists`` (true or false). A field the event lacks makes every test but
``exists: false`` and ``not_equals`` false.

Pure functions (no I/O): ``validate_tag_rules`` checks a tenant's rules and names the first
problem by its path; ``compile_tag_rules`` turns rules into a function from an event to its
tags.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .types import Event

MAX_RULES = 100
MAX_DEPTH = 5
MAX_LIST = 100
MAX_TEXT = 200
MAX_DETAIL_PATH = 5
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
EVENT_FIELDS = ("event_type", "actor_id", "actor_type", "actor_role", "actor_department",
                "entity_type", "entity_id", "severity", "source", "tags", "hour", "weekday")
OPS = ("equals", "not_equals", "in", "contains", "starts_with", "has_word", "gt", "gte", "lt",
       "lte", "exists")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

Rule = dict[str, Any]


def words(text: str) -> list[str]:
    """The lower-case words of an identifier or phrase: ``iam.CreateAccessKey`` → iam,
    create, access, key; ``user.session.start`` → user, session, start."""
    out: list[str] = []
    for part in _WORD_SPLIT.split(text):
        if part:
            out.extend(w.lower() for w in _CAMEL.findall(part))
    return out


def _w(*items: str) -> list[str]:
    return list(items)


# Built in: what every tenant gets. Tags name the condition, not a verdict.
BUILTIN_TAG_RULES: list[Rule] = [
    {"tag": "privilege-change",
     "description": "Roles, permissions, policies or group rights granted, changed or revoked",
     "when": {"all": [
         {"field": "event_type", "op": "has_word", "value": _w(
             "role", "roles", "permission", "permissions", "policy", "privilege", "privileges",
             "admin", "acl", "grant", "revoke", "rolebinding", "rolebindings",
             "clusterrolebinding", "clusterrolebindings", "clusterrole", "clusterroles",
             "owner", "elevate", "sudo", "membership", "member")},
         {"not": {"field": "event_type", "op": "has_word",
                  "value": _w("get", "list", "describe", "read", "view", "search", "simulate")}},
     ]}},
    {"tag": "off-hours",
     "description": "Occurred before 06:00 or from 22:00 UTC, or at the weekend",
     "when": {"any": [{"field": "hour", "op": "lt", "value": 6},
                      {"field": "hour", "op": "gte", "value": 22},
                      {"field": "weekday", "op": "gte", "value": 5}]}},
    {"tag": "bulk-operation",
     "description": "One action on 100 or more records, or a bulk/batch/mass action",
     "when": {"any": [{"field": "details.record_count", "op": "gte", "value": 100},
                      {"field": "details.records", "op": "gte", "value": 100},
                      {"field": "details.count", "op": "gte", "value": 100},
                      {"field": "details.rows", "op": "gte", "value": 100},
                      {"field": "event_type", "op": "has_word",
                       "value": _w("bulk", "batch", "mass")}]}},
    {"tag": "financial",
     "description": "Payments, refunds, invoices, billing or any action with an amount",
     "when": {"any": [{"field": "event_type", "op": "has_word", "value": _w(
         "payment", "payments", "refund", "refunds", "invoice", "invoices", "billing",
         "charge", "payout", "payouts", "subscription", "budget", "budgets", "transfer",
         "wire", "card")},
         {"field": "details.amount", "op": "exists", "value": True}]}},
    {"tag": "credential",
     "description": "Passwords, keys, tokens, secrets, certificates or MFA devices",
     "when": {"field": "event_type", "op": "has_word", "value": _w(
         "password", "passwords", "credential", "credentials", "secret", "secrets", "token",
         "tokens", "key", "keys", "accesskey", "apikey", "mfa", "certificate", "securestring",
         "passwd", "otp", "totp", "factor", "saml", "oauth")}},
    {"tag": "deletion",
     "description": "Something deleted, destroyed, removed, purged or terminated",
     "when": {"field": "event_type", "op": "has_word", "value": _w(
         "delete", "deleted", "destroy", "destroyed", "remove", "removed", "purge", "terminate",
         "terminated", "drop", "erase", "wipe", "deletion")}},
    {"tag": "external-access",
     "description": "Shared, made public or reached from outside the organisation",
     "when": {"any": [
         {"field": "event_type", "op": "has_word",
          "value": _w("share", "shared", "sharing", "public", "external", "anonymous",
                      "invite", "invitation", "guest", "federation")},
         {"field": "details.external", "op": "equals", "value": True},
         {"field": "details.public", "op": "equals", "value": True},
         {"field": "details.is_public", "op": "equals", "value": True}]}},
    {"tag": "failed-action",
     "description": "The action failed or was denied",
     "when": {"any": [
         {"field": "details.outcome", "op": "in",
          "value": _w("failure", "failed", "denied", "deny", "error")},
         {"field": "details.status", "op": "in", "value": _w("failed", "denied", "error")},
         {"field": "details.success", "op": "equals", "value": False},
         {"field": "details.error_code", "op": "exists", "value": True},
         {"field": "event_type", "op": "has_word",
          "value": _w("failed", "failure", "denied", "rejected")}]}},
]


class RuleError(ValueError):
    """A rule that cannot be used, with where (``rules[2].when.any[0].op``) and why."""


def validate_tag_rules(value: Any) -> list[Rule]:
    """A tenant's rules, checked and normalised (a list of at most ``MAX_RULES`` rules);
    raises ``RuleError`` naming the first problem by its path."""
    if not isinstance(value, list):
        raise RuleError("rules must be a list")
    if len(value) > MAX_RULES:
        raise RuleError(f"at most {MAX_RULES} rules, got {len(value)}")
    clean: list[Rule] = []
    for i, rule in enumerate(value):
        at = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise RuleError(f"{at}: must be an object with tag, description and when")
        unknown = set(rule) - {"tag", "description", "when"}
        if unknown:
            raise RuleError(f"{at}: unknown key {sorted(unknown)[0]!r} (allowed: tag, "
                            "description, when)")
        tag = rule.get("tag")
        if not isinstance(tag, str) or not TAG_RE.match(tag):
            raise RuleError(f"{at}.tag: 1–48 lower-case letters, digits, '-' or '_', starting "
                            "with a letter or digit")
        description = rule.get("description", "")
        if not isinstance(description, str) or len(description) > MAX_TEXT:
            raise RuleError(f"{at}.description: text of at most {MAX_TEXT} characters")
        if "when" not in rule:
            raise RuleError(f"{at}.when: required")
        clean.append({"tag": tag, "description": description,
                      "when": _condition(rule["when"], f"{at}.when", 1)})
    return clean


def _condition(cond: Any, at: str, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise RuleError(f"{at}: conditions nest at most {MAX_DEPTH} deep")
    if not isinstance(cond, dict):
        raise RuleError(f"{at}: must be an object")
    keys = set(cond)
    if keys in ({"all"}, {"any"}):
        (kind,) = keys
        items = cond[kind]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_LIST:
            raise RuleError(f"{at}.{kind}: a list of 1–{MAX_LIST} conditions")
        return {kind: [_condition(c, f"{at}.{kind}[{j}]", depth + 1)
                       for j, c in enumerate(items)]}
    if keys == {"not"}:
        return {"not": _condition(cond["not"], f"{at}.not", depth + 1)}
    if keys != {"field", "op", "value"}:
        raise RuleError(f"{at}: a condition is {{all: [...]}}, {{any: [...]}}, {{not: ...}} or "
                        "{field, op, value}")
    field, op, value = cond["field"], cond["op"], cond["value"]
    if not isinstance(field, str) or not _field_ok(field):
        raise RuleError(f"{at}.field: one of {', '.join(EVENT_FIELDS)} or details.<key>"
                        f"[.<key>…] (at most {MAX_DETAIL_PATH} keys)")
    if op not in OPS:
        raise RuleError(f"{at}.op: one of {', '.join(OPS)}")
    return {"field": field, "op": op, "value": _value(op, value, f"{at}.value")}


def _field_ok(field: str) -> bool:
    if field in EVENT_FIELDS:
        return True
    parts = field.split(".")
    return (parts[0] == "details" and 2 <= len(parts) <= MAX_DETAIL_PATH + 1
            and all(0 < len(p) <= 64 and p.isprintable() for p in parts[1:]))


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT and value.isprintable()
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    return value is None or isinstance(value, (bool, int))


def _value(op: str, value: Any, at: str) -> Any:
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _scalar(value):
            raise RuleError(f"{at}: {op} compares with a finite number")
        return value
    if op == "exists":
        if not isinstance(value, bool):
            raise RuleError(f"{at}: exists takes true or false")
        return value
    if op in ("in", "has_word"):
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST:
            raise RuleError(f"{at}: {op} takes a list of 1–{MAX_LIST} values")
        if op == "has_word":
            if not all(isinstance(v, str) and v and len(v) <= MAX_TEXT for v in value):
                raise RuleError(f"{at}: has_word takes words (text)")
            return [w for v in value for w in words(v)] or value
        if not all(_scalar(v) for v in value):
            raise RuleError(f"{at}: in takes text, numbers, true, false or null")
        return value
    if op in ("contains", "starts_with"):
        if not isinstance(value, str) or not value or not _scalar(value):
            raise RuleError(f"{at}: {op} takes text of 1–{MAX_TEXT} characters")
        return value
    if not _scalar(value):  # equals, not_equals
        raise RuleError(f"{at}: {op} takes text (at most {MAX_TEXT} characters), a number, "
                        "true, false or null")
    return value


# --- evaluation -------------------------------------------------------------------------

_MISSING = object()


def _moment(event: Event) -> datetime | None:
    try:
        return datetime.fromisoformat(event.occurred_at.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def field_value(event: Event, field: str, _cache: dict | None = None) -> Any:
    """The value a rule's ``field`` reads from ``event`` (``_MISSING`` when it has none)."""
    if field in ("hour", "weekday"):
        moment = _moment(event)
        if moment is None:
            return _MISSING
        return moment.hour if field == "hour" else moment.weekday()
    if field in EVENT_FIELDS:
        value = getattr(event, field)
        return list(value) if field == "tags" else value
    node: Any = event.action_details
    for key in field.split(".")[1:]:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", ""))
        except ValueError:
            return None
    return None


def _norm(value: Any) -> Any:
    """What equality compares: text ignoring case, true/false apart from 1/0, numbers by
    value; anything else (lists, objects) never equals a rule's value."""
    if isinstance(value, str):
        return ("s", value.casefold())
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", float(value))
    if value is None:
        return ("null", None)
    return ("other", id(value))


def _test(op: str, expected: Any) -> Callable[[Any], bool]:
    if op == "exists":
        return lambda v: (v is not _MISSING and v is not None) == expected
    if op == "not_equals":
        unwanted = _norm(expected)
        return lambda v: v is _MISSING or _norm(v) != unwanted
    if op in ("equals", "in"):
        options = [_norm(e) for e in (expected if op == "in" else [expected])]
        return lambda v: v is not _MISSING and _norm(v) in options
    if op in ("contains", "starts_with"):
        needle = expected.lower()
        if op == "contains":
            return lambda v: isinstance(v, str) and needle in v.lower()
        return lambda v: isinstance(v, str) and v.lower().startswith(needle)
    if op == "has_word":
        wanted = set(expected)

        def has_word(v: Any) -> bool:
            if isinstance(v, str):
                return not wanted.isdisjoint(words(v))
            if isinstance(v, list):
                return any(isinstance(x, str) and not wanted.isdisjoint(words(x)) for x in v)
            return False
        return has_word
    bound = float(expected)
    compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__,
               "lte": float.__le__}[op]

    def numeric(v: Any) -> bool:
        n = _number(v)
        return n is not None and compare(n, bound)
    return numeric


def _compile(cond: dict[str, Any]) -> Callable[[Event], bool]:
    if "all" in cond:
        parts = [_compile(c) for c in cond["all"]]
        return lambda e: all(p(e) for p in parts)
    if "any" in cond:
        parts = [_compile(c) for c in cond["any"]]
        return lambda e: any(p(e) for p in parts)
    if "not" in cond:
        inner = _compile(cond["not"])
        return lambda e: not inner(e)
    field, test = cond["field"], _test(cond["op"], cond["value"])
    return lambda e: test(field_value(e, field))


def compile_tag_rules(rules: Sequence[Rule]) -> Callable[[Event], list[str]]:
    """A function giving an event's tags (sorted, each once) under ``rules`` (validated)."""
    compiled = [(rule["tag"], _compile(rule["when"])) for rule in rules]

    def tags_of(event: Event) -> list[str]:
        return sorted({tag for tag, holds in compiled if holds(event)})
    return tags_of


# the built-in rules are checked like a tenant's (a typo in them fails at import)
BUILTIN_TAG_RULES = validate_tag_rules(BUILTIN_TAG_RULES)
