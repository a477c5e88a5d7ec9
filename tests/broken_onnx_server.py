"""`tei-bento serve` whose ONNX export comes out slightly wrong, as a bad exporter would make it.

Run as `python -m tests.broken_onnx_server serve ...`: the real server process, with only
`build_onnx_backend` wrapped, so a test can show over HTTP that `--backend auto` refuses a
graph that does not reproduce the torch network and serves torch instead.
"""

from __future__ import annotations

import sys
from typing import Any

from tei_bento import cli
from tei_bento.backends import onnx


class Shifted:
    """An ONNX backend whose outputs are off by a little: what a bad export would give."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name, self.device = backend.name, backend.device
        self.input_names, self.accuracy = backend.input_names, backend.accuracy

    def forward(self, feeds: Any) -> Any:
        return self.backend.forward(feeds) + 1e-2


def shifted_build(build: Any) -> Any:
    def build_shifted(*args: Any, **kwargs: Any) -> Any:
        return Shifted(build(*args, **kwargs))

    return build_shifted


if __name__ == "__main__":
    onnx.build_onnx_backend = shifted_build(onnx.build_onnx_backend)
    cli.main(sys.argv[1:])
