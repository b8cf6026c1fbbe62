"""The search vocabulary: how people ask about audit events mapped to the words event
types are named with.

People ask "who turned off audit logging?" or "was a file removed?"; event types say
``cloudtrail.StopLogging`` or ``s3.DeleteObject``. Each entry below is a group of words or
phrases a question may use (its *triggers*) and the words event types, resources and
services are commonly named with for the same thing (its *terms*). When a trigger occurs in
a question, the full-text half of search also looks for the terms (joined by OR with the
question's own words). The vector half reads the question as it is.

The entries are general: verbs of the create / read / update / delete / run / grant family
as API and event names spell them, and the common names of cloud and IT resources, not the
wording of any particular question set. Triggers are matched on lower-case words with
common endings taken off (``deleted``, ``deletes``, ``deleting`` all match ``delete``),
phrases as consecutive words; stop words are kept, so "turn off" and "turn on" differ.
Documented in docs/user-guide.md ("Words search understands").
"""

from __future__ import annotations

import re
from functools import lru_cache

#: (triggers, terms): a trigger is a word or a phrase (several words in this order).
VOCABULARY: tuple[tuple[tuple[str, ...], str], ...] = (
    # -- what was done ----------------------------------------------------------------------
    (("delete", "remove", "erase", "destroy", "drop", "purge", "wipe", "get rid of"),
     "delete remove"),
    (("turn off", "turned off", "switch off", "shut off", "disable", "deactivate", "stop", "halt",
      "pause", "shut down", "suspend"),
     "stop disable delete"),
    (("turn on", "turned on", "switch on", "enable", "activate", "start", "began", "resume",
      "boot"),
     "start enable"),
    (("create", "add", "new", "set up", "make", "register", "provision", "launch"),
     "create add put run register"),
    (("change", "modify", "update", "edit", "alter", "replace", "overwrite", "set",
      "reset", "rotate"),
     "update modify put set replace"),
    (("read", "retrieve", "fetch", "view", "obtain", "look", "download", "steal", "stole",
      "stolen", "dump", "access", "see", "saw", "seen"),
     "get describe read download"),
    (("list", "enumerate", "browse", "inventory", "discover", "search"),
     "list describe filter search"),
    (("run", "ran", "execute", "invoke", "call", "use", "trigger"),
     "invoke send run execute start command"),
    (("share", "expose", "make public", "made public", "available", "publish"),
     "modify attribute permission policy share public"),
    (("open", "allow", "permit", "whitelist", "allowlist"),
     "authorize ingress add permission allow"),
    (("close", "block", "deny", "restrict"),
     "revoke deny block"),
    (("grant", "give", "gave", "given", "attach", "assign", "elevate", "escalate", "promote"),
     "attach put add grant"),
    (("revoke", "detach", "take away", "took away", "taken away", "unassign", "demote"),
     "detach revoke remove"),
    (("sign in", "signed in", "sign on", "log in", "logged in", "log on", "login", "logon",
      "signin"),
     "login logon signin console"),
    (("sign out", "signed out", "log out", "logged out", "logout", "logoff", "signout"),
     "logout logoff signout"),
    (("fail", "failure", "failed", "denied", "unauthorized", "unauthorised", "rejected",
      "error"),
     "failed failure error denied unauthorized"),
    (("upload", "write", "wrote", "written", "store", "save"),
     "put upload write"),
    (("copy", "backup", "back up", "clone"),
     "copy snapshot backup"),
    (("assume", "impersonate", "switch role"),
     "assume role"),
    (("leave", "quit", "exit"),
     "leave"),
    (("accept", "agree", "sign up", "subscribe"),
     "accept agreement subscribe entitlement"),
    (("connect", "remote", "ssh"),
     "ssh session connect"),
    # -- what it was done to ----------------------------------------------------------------
    (("audit log", "audit logging", "audit trail", "audit record", "trail"),
     "cloudtrail trail logging"),
    (("firewall", "port", "inbound", "outbound"),
     "security group ingress egress"),
    (("machine image", "disk image", "image", "ami"),
     "image ami"),
    (("disk", "volume", "drive"),
     "volume snapshot ebs"),
    (("database", "db"),
     "db rds database"),
    (("password", "passphrase"),
     "password login profile"),
    (("serverless", "function"),
     "lambda function"),
    (("admin", "administrator", "superuser", "root", "full access"),
     "administrator admin policy"),
    (("credential", "access key", "api key", "token"),
     "access key credential token"),
    (("secret",),
     "secret"),
    (("server", "machine", "virtual machine", "vm", "host", "instance"),
     "instance ec2"),
    (("file", "object", "bucket", "storage"),
     "s3 object bucket"),
    (("dns", "domain name"),
     "route53 resolver dns"),
    (("network log", "traffic log", "flow log"),
     "flow logs"),
    (("systems manager", "parameter store"),
     "ssm parameter"),
    (("generative ai", "ai model", "language model", "llm", "foundation model", "gpt"),
     "bedrock model foundation"),
    (("alarm", "alert", "monitoring"),
     "alarm monitoring metric"),
    (("bill", "billing", "cost", "spend", "spending", "invoice"),
     "cost usage budget"),
    (("mfa", "multi-factor", "two-factor", "2fa", "one-time code"),
     "mfa"),
    (("permission", "policy", "access right", "privilege"),
     "policy permission"),
    (("identity", "whoami", "who am i"),
     "identity caller"),
    (("tag", "label"),
     "tags"),
    (("shell", "terminal", "command line", "session"),
     "session command"),
    (("user data", "startup script", "boot script", "init script"),
     "userdata instance attribute"),
    (("organization", "organisation"),
     "organizations organization"),
    (("encryption key", "kms"),
     "kms key"),
    (("log", "logs"),
     "logs logging"),
)


_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_DOUBLED = re.compile(r"([bdfgklmnprtz])\1$")


def word_stem(word: str) -> str:
    """``word`` without one common English ending (``-ing``, ``-ed``, ``-es``, ``-s``,
    ``-e``; a doubled final consonant left by it is halved): ``stopped`` -> ``stop``,
    ``deletes`` -> ``delet``, ``delete`` -> ``delet``. Crude, and only used to compare
    a question's words with the vocabulary's, both stemmed alike."""
    for ending in ("ing", "ed", "es", "s", "e"):
        if word.endswith(ending) and len(word) - len(ending) >= 2:
            stem = word[:-len(ending)]
            if ending in ("ing", "ed") and _DOUBLED.search(stem):
                stem = stem[:-1]
            return stem
    return word


def _stems(text: str) -> tuple[str, ...]:
    return tuple(word_stem(w) for w in _WORD.findall(text.lower()))


@lru_cache(maxsize=1)
def _triggers() -> tuple[tuple[tuple[str, ...], int], ...]:
    return tuple((_stems(trigger), n) for n, (triggers, _) in enumerate(VOCABULARY)
                 for trigger in triggers)


def matched_entries(question: str) -> list[int]:
    """Indexes of the vocabulary entries a trigger of which occurs in ``question``."""
    words = _stems(question)
    found: set[int] = set()
    for trigger, n in _triggers():
        size = len(trigger)
        if n not in found and any(words[k:k + size] == trigger
                                  for k in range(len(words) - size + 1)):
            found.add(n)
    return sorted(found)


def expansion_terms(question: str) -> str:
    """The terms the vocabulary adds to ``question`` (each word once, in entry order; ""
    when no trigger occurs in it)."""
    seen: dict[str, None] = {}
    for n in matched_entries(question):
        for word in VOCABULARY[n][1].split():
            seen.setdefault(word, None)
    return " ".join(seen)
