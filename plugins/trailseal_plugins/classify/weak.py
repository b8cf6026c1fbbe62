"""Keyword rules: a first category and risk level for an event from the words of its type,
its entity type and its details. They are the weak labels a tenant's first model trains on
(with analysts' corrections, which win), a feature of every model, and the "rules alone"
peer of the evaluation.

The category rules are tried in order; the first whose words appear wins (None when none
does). The risk starts from the category's usual risk and the event's own severity and rises
for failures of sensitive actions, deletions, bulk actions, large amounts and actions that
switch security controls off or hand out administrator rights.
"""

from __future__ import annotations

from trailseal.rules import words
from trailseal.types import CATEGORIES, RISK_LEVELS, Event

from ..anomaly.features import amount_of, failed

# (category, words); the first match wins, so specific vocabularies come before generic verbs
CATEGORY_WORDS: list[tuple[str, frozenset[str]]] = [
    ("financial", frozenset({
        "payment", "payments", "refund", "refunded", "refunds", "invoice", "invoices", "billing",
        "charge", "charged", "payout", "payouts", "subscription", "budget", "budgets", "price",
        "pricing", "tax", "wire", "ledger", "card", "purchase", "cost"})),
    ("security", frozenset({
        "guardduty", "securityhub", "detector", "trail", "cloudtrail", "kms", "secret",
        "secrets", "securestring", "encryption", "decrypt", "encrypt", "firewall", "waf",
        "threat", "vulnerability", "malware", "alert", "alerts", "macie", "inspector",
        "flowlogs", "getpassworddata", "password", "breach", "quarantine", "security"})),
    ("authentication", frozenset({
        "login", "logout", "signin", "signout", "logon", "logoff", "session", "sessions",
        "mfa", "authenticate", "authentication", "auth", "sso", "saml", "console", "factor",
        "otp", "verify", "impersonation"})),
    ("access_control", frozenset({
        "policy", "policies", "role", "roles", "permission", "permissions", "grant", "granted",
        "revoke", "revoked", "acl", "rolebinding", "rolebindings", "clusterrolebinding",
        "clusterrolebindings", "clusterrole", "clusterroles", "privilege", "assume", "access",
        "collaborator", "branch", "protection", "allowlist", "ipallowlist"})),
    ("data_export", frozenset({
        "export", "exported", "download", "downloaded", "dump", "backup", "snapshot", "copy",
        "clone", "archive", "transfer", "replicate", "share", "shared"})),
    ("user_management", frozenset({
        "user", "users", "group", "groups", "member", "members", "membership", "invite",
        "invited", "profile", "suspend", "suspended", "deactivate", "deactivated", "activate",
        "provision", "deprovision", "account", "person", "team", "teams", "serviceaccount",
        "serviceaccounts"})),
    ("integration_system", frozenset({
        "integration", "integrations", "webhook", "webhooks", "oauth", "app", "apps", "api",
        "rate", "limit", "system", "job", "jobs", "sync", "cron", "bot", "hook", "hooks",
        "deployment", "deploy", "workflow", "pipeline", "lambda", "function", "endpoint",
        "token", "tokens", "key", "keys", "pod", "pods", "exec", "attach", "node", "daemon"})),
    ("configuration_change", frozenset({
        "config", "configuration", "setting", "settings", "attribute",
        "parameter", "parameters", "lifecycle", "versioning", "logging", "network", "vpc",
        "subnet", "route", "dns", "domain", "retention", "branding", "locale", "configmap",
        "configmaps", "namespace", "namespaces", "instance", "cluster", "bucket", "org",
        "organization", "enforced", "required"})),
    ("data_access", frozenset({
        "get", "list", "describe", "read", "view", "viewed", "search", "query", "head", "fetch",
        "watch", "lookup", "select", "open", "opened", "report", "retrieve"})),
    ("data_modification", frozenset({
        "create", "created", "update", "updated", "put", "delete", "deleted", "modify",
        "patch", "write", "upload", "insert", "edit", "run", "start", "stop", "terminate",
        "change", "changed", "set", "add", "remove", "close", "closed", "sent", "send",
        "renewed", "captured", "replace", "tag", "untag", "restore"})),
]
assert {c for c, _ in CATEGORY_WORDS} == set(CATEGORIES)

# the risk a category starts from
CATEGORY_RISK = {
    "authentication": "low", "access_control": "high", "user_management": "medium",
    "data_access": "low", "data_modification": "medium", "data_export": "high",
    "configuration_change": "medium", "financial": "medium", "security": "high",
    "integration_system": "low",
}
SEVERITY_RISK = {"info": "low", "low": "low", "medium": "medium", "high": "high",
                 "critical": "critical"}
DISABLING = frozenset({"stop", "disable", "disabled", "deactivate", "suspend"})
ADMIN = frozenset({"admin", "administrator", "owner", "root", "superuser", "cluster-admin",
                   "fullaccess", "administratoraccess"})
DELETION = frozenset({"delete", "deleted", "destroy", "remove", "removed", "purge",
                      "terminate", "drop", "erase", "wipe"})
BULK_AMOUNT = 2.0  # log10(1 + records): 100 or more
LARGE_AMOUNT = 4.0  # log10(1 + amount): 10,000 or more


def event_words(e: Event) -> list[str]:
    """The words the rules read: of the event type and the entity type."""
    return words(e.event_type) + words(e.entity_type or "")


def rule_category(e: Event, found: list[str] | None = None) -> str | None:
    """The first category whose words appear in the event's type or entity type."""
    found = event_words(e) if found is None else found
    type_words = set(words(e.event_type))
    for category, vocabulary in CATEGORY_WORDS:  # the event type first
        if not type_words.isdisjoint(vocabulary):
            return category
    entity = set(found) - type_words
    for category, vocabulary in CATEGORY_WORDS:
        if not entity.isdisjoint(vocabulary):
            return category
    return None


def _up(level: str, steps: int = 1) -> str:
    return RISK_LEVELS[min(len(RISK_LEVELS) - 1, RISK_LEVELS.index(level) + steps)]


def rule_risk(e: Event, category: str | None, found: list[str] | None = None) -> str:
    """A risk level from the category, the event's severity and what it did."""
    found = set(event_words(e) if found is None else found)
    risk = max(CATEGORY_RISK.get(category or "", "low"), SEVERITY_RISK.get(e.severity, "low"),
               key=RISK_LEVELS.index)
    details_text = " ".join(str(v) for v in (e.action_details or {}).values()
                            if isinstance(v, str))[:500].lower()
    if category == "security" and not found.isdisjoint(DISABLING | DELETION):
        return "critical"
    if category == "access_control" and (not found.isdisjoint(ADMIN)
                                         or any(a in details_text for a in ADMIN)):
        return "critical"
    if failed(e) and category in ("authentication", "access_control", "security",
                                  "user_management"):
        risk = _up(risk)
    if not found.isdisjoint(DELETION) and category not in ("data_access",):
        risk = _up(risk)
    amount = amount_of(e.action_details)
    if amount is not None and amount >= LARGE_AMOUNT and category == "financial":
        risk = _up(risk)
    elif amount is not None and amount >= BULK_AMOUNT and category in ("data_export",
                                                                       "data_modification"):
        risk = _up(risk)
    return risk


def rule_labels(e: Event) -> tuple[str | None, str]:
    """``(category or None, risk level)`` by the keyword rules."""
    found = event_words(e)
    category = rule_category(e, found)
    return category, rule_risk(e, category, found)
