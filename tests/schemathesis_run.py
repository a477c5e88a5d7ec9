"""Drive schemathesis' per-operation Hypothesis tests one after another, gathering failures.

schemathesis' own pytest integration (`schemathesis.pytest.from_fixture`) needs a pytest
older than the one this project runs, so the fuzz tests drive the same per-operation tests
(`get_all_tests`, what that integration calls) themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.pytest.lazy import get_all_tests

HYPOTHESIS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)


def run_every_operation(spec: Any, check_one: Callable[[Any], None]) -> tuple[int, list[str]]:
    """(operations run, one text per operation that failed, after Hypothesis shrank it)."""
    operations = 0
    failures: list[str] = []
    for result in get_all_tests(schema=spec, test_func=check_one, settings=HYPOTHESIS, given_kwargs={}):
        operation, run_operation = result.ok()  # a spec schemathesis cannot read fails here
        operations += 1
        try:
            run_operation()
        except Unsatisfiable:  # nothing left to vary (GET routes without parameters)
            pass
        except BaseException as exc:  # a FailureGroup
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}:\n{exc}")
    return operations, failures
