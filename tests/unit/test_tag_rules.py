"""Business-rule tags (``trailseal.rules``): the language's validation names the problem by
its path, the built-in rules tag what they say, and a rule's tag appears exactly when its
condition holds (checked against an independent reading of the condition)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.rules import (
    BUILTIN_TAG_RULES,
    MAX_RULES,
    RuleError,
    compile_tag_rules,
    validate_tag_rules,
    words,
)
from trailseal.types import Event


def event(**overrides) -> Event:
    fields = {"id": "e1", "tenant_id": "t", "seq": 1, "occurred_at": "2026-11-25T10:00:00Z",
              "event_type": "invoice.updated", "actor_id": "u-1", "actor_type": "user",
              "actor_role": "accountant", "actor_department": "finance",
              "entity_type": "invoice", "entity_id": "INV-1", "severity": "low",
              "source": "web", "tags": (), "action_details": {"amount": 12.5}}
    fields.update(overrides)
    return Event(**fields)


BUILTIN = compile_tag_rules(BUILTIN_TAG_RULES)


@pytest.mark.parametrize(("overrides", "expected", "absent"), [
    ({"event_type": "iam.AttachUserPolicy"}, "privilege-change", None),
    ({"event_type": "role.granted"}, "privilege-change", None),
    ({"event_type": "iam.ListRoles"}, None, "privilege-change"),
    ({"occurred_at": "2026-11-25T03:00:00Z"}, "off-hours", None),
    ({"occurred_at": "2026-11-28T12:00:00Z"}, "off-hours", None),  # a Saturday
    ({"occurred_at": "2026-11-25T12:00:00Z"}, None, "off-hours"),
    ({"action_details": {"rows": 5000}}, "bulk-operation", None),
    ({"event_type": "records.bulk_delete", "action_details": None}, "bulk-operation", None),
    ({"event_type": "payment.refunded", "action_details": None}, "financial", None),
    ({"event_type": "iam.CreateAccessKey"}, "credential", None),
    ({"event_type": "user.password_changed"}, "credential", None),
    ({"event_type": "s3.DeleteBucket"}, "deletion", None),
    ({"event_type": "report.shared"}, "external-access", None),
    ({"action_details": {"outcome": "FAILURE"}}, "failed-action", None),
    ({"action_details": {"error_code": "AccessDenied"}}, "failed-action", None),
    ({"event_type": "user.login_failed"}, "failed-action", None),
    ({"action_details": {"outcome": "success"}}, None, "failed-action"),
])
def test_builtin_rules(overrides, expected, absent):
    tags = BUILTIN(event(**overrides))
    if expected:
        assert expected in tags
    if absent:
        assert absent not in tags


@pytest.mark.parametrize(("rules", "message"), [
    ({"tag": "x"}, "rules must be a list"),
    ([{"tag": "Bad Tag", "when": {"field": "severity", "op": "equals", "value": "x"}}],
     "rules[0].tag"),
    ([{"tag": "ok", "when": {"field": "colour", "op": "equals", "value": "x"}}],
     "rules[0].when.field"),
    ([{"tag": "ok", "when": {"any": [{"field": "severity", "op": "like", "value": "x"}]}}],
     "rules[0].when.any[0].op: one of equals"),
    ([{"tag": "ok", "when": {"field": "details.amount", "op": "gte", "value": "big"}}],
     "rules[0].when.value: gte compares with a finite number"),
    ([{"tag": "ok", "when": {"field": "details.amount", "op": "gte", "value": True}}],
     "finite number"),
    ([{"tag": "ok", "when": {"field": "hour", "op": "in", "value": []}}], "a list of 1–100"),
    ([{"tag": "ok"}], "rules[0].when: required"),
    ([{"tag": "ok", "when": {}, "colour": 1}], "unknown key 'colour'"),
    ([{"tag": "ok", "when": {"not": {"not": {"not": {"not": {"not": {
        "field": "hour", "op": "lt", "value": 1}}}}}}}], "nest at most"),
    ([{"tag": "ok", "when": {"field": "severity", "op": "equals", "value": "a\x00b"}}],
     "rules[0].when.value"),
    ([{"tag": "ok", "when": {"field": "details." + ".".join("k" * 7), "op": "exists",
                             "value": True}}], "rules[0].when.field"),
    ([{"tag": f"t{i}", "when": {"field": "hour", "op": "lt", "value": 1}}
      for i in range(MAX_RULES + 1)], f"at most {MAX_RULES} rules"),
])
def test_validation_names_the_problem(rules, message):
    with pytest.raises(RuleError) as exc:
        validate_tag_rules(rules)
    assert message in str(exc.value)


def test_words_split_identifiers():
    assert words("iam.CreateAccessKey") == ["iam", "create", "access", "key"]
    assert words("user.login_failed") == ["user", "login", "failed"]
    assert words("k8s.create.clusterrolebindings") == ["k", "8", "s", "create",
                                                        "clusterrolebindings"]


def test_a_tenant_rule_on_details_and_words():
    rules = validate_tag_rules([{
        "tag": "large-refund", "description": "Refunds of 5,000 or more",
        "when": {"all": [{"field": "event_type", "op": "has_word", "value": ["Refunded"]},
                         {"field": "details.amount", "op": "gte", "value": 5000}]}}])
    tags_of = compile_tag_rules(rules)
    assert tags_of(event(event_type="payment.refunded", action_details={"amount": 7000}))
    assert not tags_of(event(event_type="payment.refunded", action_details={"amount": 70}))
    assert not tags_of(event(event_type="payment.captured", action_details={"amount": 7000}))
    assert not tags_of(event(event_type="payment.refunded", action_details=None))


@settings(max_examples=150, deadline=None)
@given(amount=st.one_of(st.none(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False, width=32)),
       bound=st.integers(-1000, 1000),
       op=st.sampled_from(["gt", "gte", "lt", "lte"]))
def test_numeric_rule_tags_exactly_when_its_condition_holds(amount, bound, op):
    tags_of = compile_tag_rules(validate_tag_rules(
        [{"tag": "t", "when": {"field": "details.amount", "op": op, "value": bound}}]))
    details = {} if amount is None else {"amount": amount}
    holds = amount is not None and {
        "gt": amount > bound, "gte": amount >= bound, "lt": amount < bound,
        "lte": amount <= bound}[op]
    assert (tags_of(event(action_details=details)) == ["t"]) == holds


WORDS = ["create", "delete", "user", "role", "export", "refund", "login", "key", "policy"]


@settings(max_examples=150, deadline=None)
@given(type_words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
       wanted=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
       style=st.sampled_from(["dotted", "camel", "snake"]),
       hour=st.integers(0, 23))
def test_word_and_hour_rules_tag_exactly_when_they_hold(type_words, wanted, style, hour):
    if style == "dotted":
        event_type = ".".join(type_words)
    elif style == "camel":
        event_type = "svc." + "".join(w.capitalize() for w in type_words)
    else:
        event_type = "_".join(type_words)
    tags_of = compile_tag_rules(validate_tag_rules([
        {"tag": "word", "when": {"field": "event_type", "op": "has_word", "value": wanted}},
        {"tag": "night", "when": {"not": {"field": "hour", "op": "gte", "value": 6}}}]))
    tags = tags_of(event(event_type=event_type, occurred_at=f"2026-11-25T{hour:02d}:30:00Z"))
    assert ("word" in tags) == bool(set(type_words) & set(wanted))
    assert ("night" in tags) == (hour < 6)
