"""Schema-driven fuzzing: schemathesis reads the app's /openapi.json and throws generated requests at
every documented route, in-process through WSGI.

Bounded — a handful of valid and invalid examples per operation, about 100 in all — so it runs in
`make test`. Every answer must be below 500 and match the documented status codes and bodies, and every
4xx must be the JSON error envelope with model_version.
(schemathesis' own `from_fixture` needs a pytest internal that pytest 9 removed, so the operations
are driven with plain hypothesis `@given` inside the test.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES_PER_OPERATION = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 6}
#: Beyond "no 5xx": every status, content type and body is the one /openapi.json documents, so a client
#: generated from it (the Angular team's) can trust it.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(EXAMPLES_PER_OPERATION), ids=lambda m: m.value)
def test_generated_requests_get_no_5xx(make_app, mode: GenerationMode):
    """Valid (positive) and schema-violating (negative) requests alike: never 5xx, always as documented."""
    app = make_app()
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app).exclude(path_regex="^/admin")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/upload-excel", "/generate-promo", "/generate-post", "/personas",
                                              "/personas/{cluster_id}", "/options", "/health"}

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.path_parameters or operation.query):
            continue  # nothing in the request to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION[mode], deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            case.validate_response(response, checks=CHECKS)
            if response.status_code >= 400:
                body = response.json()
                assert body["status"] == "error" and body["error"]["code"] and body["error"]["message"], body
                assert "model_version" in body, body

        check()
