"""Property-based API testing: schemathesis sends generated requests (valid and invalid) for every operation of
``/openapi.json`` to the app in process; no request may produce a server error (5xx), and every response must
match its documented status codes and schema. Bounded: a few examples per operation (well under a minute).

The operations are run from one test rather than with ``schema.parametrize()``: its fixture-based form
(``schemathesis.pytest.from_fixture``, needed because the app needs the session's demo index) fails on pytest 9.
"""

from __future__ import annotations

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_no_server_errors_and_responses_match_the_schema(demo_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", demo_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /api/recommend", "GET /api/items/{item_id}/similar", "GET /metrics"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        check()
