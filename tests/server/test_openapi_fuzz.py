"""schemathesis against the served OpenAPI document: bounded generated requests, no 5xx, and
every answer matches its documented schema. (Operations are driven with hypothesis directly:
schemathesis' own pytest plugin does not load under this pytest version.)"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def test_generated_requests_never_get_a_server_error(server, http):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    calls: dict[str, int] = {}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def run(case):
            label = f"{case.method.upper()} {case.operation.path}"
            calls[label] = calls.get(label, 0) + 1
            case.call_and_validate(base_url=server.url, checks=CHECKS)

        run()
    assert len(calls) == 7 and calls["POST /v1/jobs"] >= 20, calls
    assert http.get(server.url + "/v1/health").json()["status"] == "ok"
