"""notebooks/: every notebook executes in a fresh kernel (their own asserts compare every
number with sentence-transformers), and the committed ones are notebooks/build.py's cells,
executed (outputs present, no error), so they neither rot nor drift from their source."""

from __future__ import annotations

import importlib.util

import pytest

from tests.server import REPO

NOTEBOOKS = REPO / "notebooks"


def load_build():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()


@pytest.mark.parametrize("name", list(build.NOTEBOOKS))
def test_committed_notebook_is_its_source_executed(name):
    import nbformat

    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert [(c.cell_type, c.source) for c in committed.cells] == [
        ("markdown" if kind == "md" else "code", source) for kind, source in build.NOTEBOOKS[name]
    ], f"stale: python notebooks/build.py {name}"
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"not executed: python notebooks/build.py {name}"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), "its plot"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(build.NOTEBOOKS))
def test_notebook_executes(name, server_pool):
    server_pool.stop_all()  # a kernel, its servers and Ray next to the suite's servers: make room
    nb = build.execute(build.notebook(build.NOTEBOOKS[name]))  # raises on a failing cell
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
