"""Property-based fuzzing of every operation in /openapi.json, against a real server.

schemathesis reads the spec the server publishes and generates requests from it: the
documented examples, boundary values of every schema (coverage phase), then random valid
bodies and random invalid ones (wrong types, missing fields, bytes that are not JSON).
Every answer is checked against the same spec: never a 5xx, and status code, content type,
body and headers as documented. The run is bounded (examples per operation) and
deterministic (fixed seed, derandomized), so it takes well under 90 s on two cores, and it
prints how many cases it tried and how many server errors it found.

The per-operation tests run one after another (tests/schemathesis_run.py), and every
failure is gathered before the test fails.
"""

from __future__ import annotations

import time
from collections import Counter

import requests
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from tests.schemathesis_run import run_every_operation

SEED = 20261121
EXAMPLES_PER_OPERATION = 30  # random cases per operation (fuzzing phase), valid and invalid
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)

def test_every_answer_matches_the_spec(default_server, capsys, record_property):
    spec = schemathesis.openapi.from_url(default_server.url + "/openapi.json", config=CONFIG)
    stats: Counter = Counter()
    session = requests.Session()

    def check_one(case) -> None:
        stats["cases"] += 1
        response = case.call(session=session, timeout=60)
        stats[response.status_code] += 1
        if response.status_code >= 500:
            stats["server_errors"] += 1
        case.validate_response(response, checks=CHECKS)

    started = time.monotonic()
    operations, failures = run_every_operation(spec, check_one)
    elapsed = time.monotonic() - started
    statuses = ", ".join(
        f"{code}: {stats[code]}" for code in sorted(k for k in stats if isinstance(k, int))
    )
    summary = (
        f"schemathesis: {stats['cases']} cases over {operations} operations in {elapsed:.1f}s; "
        f"server errors (5xx): {stats['server_errors']}; operations breaking the spec: "
        f"{len(failures)}; statuses: {statuses}"
    )
    with capsys.disabled():  # shown even when pytest captures output
        print("\n" + summary)
    record_property("schemathesis", summary)
    documented = sum(len(item) for item in spec.raw_schema["paths"].values())
    assert operations == documented >= 19, summary  # every operation of the spec was fuzzed
    assert stats["cases"] > 20 * operations, summary
    assert stats["server_errors"] == 0, summary
    assert not failures, summary + "\n\n" + "\n\n".join(failures)


def test_the_server_still_answers_after_the_fuzzing(default_server):
    response = requests.post(default_server.url + "/embed", json={"inputs": "alive"}, timeout=30)
    assert response.status_code == 200 and len(response.json()[0]) == 384


def test_spec_marks_what_the_api_key_guards():
    """With --api-key, each guarded operation says so and documents the 401 it answers."""
    from starlette.testclient import TestClient

    from tei_bento.api.app import create_app
    from tei_bento.settings import Settings

    client = TestClient(create_app(Settings(api_key="s3cret")))
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    components = spec["components"]["schemas"]
    guarded = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            response = client.request(method.upper(), path, json={})
            if "security" not in operation:
                assert response.status_code != 401, (method, path)
                continue
            guarded += 1
            assert response.status_code == 401, (method, path, response.text)
            documented = operation["responses"]["401"]["content"]["application/json"]["schema"]
            required = components[documented["$ref"].rsplit("/", 1)[1]]["required"]
            assert set(required) <= set(response.json()), (method, path, response.json())
    assert guarded >= 15
