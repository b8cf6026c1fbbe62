"""Schema-driven fuzzing of the REST API (in-process WSGI): no generated input is a 500,
every status is documented, and every error has the one error shape."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

from trailseal.testing import make_tenant

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def test_api_never_fails_on_generated_input(trailseal_app, trailseal_services):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", trailseal_app)
    tenant = make_tenant(trailseal_services)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9

    for operation in operations:
        @FUZZ
        @given(case=operation.as_strategy())
        def check(case):
            # Validation is stricter than JSON Schema can say (years 1970–9998, no NUL
            # characters, real IP addresses), so schema-valid input may still be a 422.
            response = case.call_and_validate(headers=tenant.headers,
                                              additional_checks=[status_code_conformance],
                                              excluded_checks=[positive_data_acceptance])
            assert response.status_code < 500, (case.method, case.path, response.text)
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"code", "message", "details"} and error["message"]

        check()
