"""schemathesis over BentoML's own OpenAPI (`/docs.json`) for the typed API methods.

The TEI routes are fuzzed against the mounted app's spec (tests/api/test_fuzz_openapi.py);
this drives the `/bento/*` methods as BentoML documents them, on the session's four-model
`bentoml serve` process: the documented examples, boundary values and random valid and
invalid bodies (wrong types, missing fields, bytes that are not JSON). BentoML's spec
documents no error answers, so the check is the one that matters for a client: never a 5xx.
A well-formed `embed` caller runs beside the fuzz and must keep getting the reference
vector.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from tests.reference import assert_same_vectors
from tests.schemathesis_run import run_every_operation

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261203,
        "generation": {"mode": "all", "max-examples": 25, "deterministic": True},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
STEADY = "a well-formed BentoML call beside the fuzz"


def test_bentomls_methods_never_answer_a_server_error(bentoml_four_models, minilm_reference, capsys):
    server = bentoml_four_models
    spec = schemathesis.openapi.from_url(server.url + "/docs.json", config=CONFIG).include(path_regex="^/bento/")
    stats: Counter = Counter()
    session = requests.Session()
    stop, steady_failures, steady_answers = threading.Event(), [], []
    expected = minilm_reference.encode([STEADY])
    submitted: list[str] = []  # the fuzz's tasks, cancelled afterwards (a boundary case may be 100,000 texts)

    def steady() -> None:
        own = requests.Session()
        while not stop.is_set():
            r = own.post(server.url + "/bento/embed", json={"inputs": [STEADY], "model": "minilm"}, timeout=60)
            if r.status_code == 429:
                continue
            try:
                assert r.status_code == 200, r.text
                assert_same_vectors(r.json(), expected)
                steady_answers.append(1)
            except AssertionError as exc:
                steady_failures.append(str(exc)[:300])

    def check_one(case) -> None:
        stats["cases"] += 1
        response = case.call(session=session, timeout=120)
        stats[response.status_code] += 1
        if response.status_code >= 500:
            stats["server_errors"] += 1
        if case.path.endswith("/submit") and response.status_code == 200:
            submitted.append(response.json().get("task_id"))
        case.validate_response(response, checks=[not_a_server_error])

    thread = threading.Thread(target=steady, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        operations, failures = run_every_operation(spec, check_one)
    finally:
        stop.set()
        thread.join(timeout=120)
        for task_id in submitted:
            requests.put(server.url + "/bento/embed_batch/cancel", params={"task_id": task_id}, timeout=30)
    statuses = ", ".join(f"{code}: {stats[code]}" for code in sorted(k for k in stats if isinstance(k, int)))
    summary = (
        f"schemathesis (BentoML /docs.json, /bento/*): {stats['cases']} cases over {operations} operations "
        f"in {time.monotonic() - started:.1f}s; server errors (5xx): {stats['server_errors']}; statuses: {statuses}"
    )
    with capsys.disabled():
        print("\n" + summary)
    assert operations >= 7, summary  # every method (and the task's submit / status / get ...)
    assert stats["cases"] > 10 * operations, summary
    assert stats["server_errors"] == 0 and not failures, summary + "\n\n" + "\n\n".join(failures)[:6000]
    assert steady_answers and not steady_failures, steady_failures[:3]
