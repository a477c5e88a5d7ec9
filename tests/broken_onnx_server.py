"""`tei-bento serve` whose ONNX export comes out slightly wrong, as a bad exporter would make it.

Run as `python -m tests.broken_onnx_server serve ...`: the real server process, with only
`build_onnx_network` wrapped, so a test can show over HTTP that `--backend auto` refuses a
graph that does not reproduce the torch network and serves torch instead.
"""

from __future__ import annotations

import sys
from typing import Any

from tei_bento import cli
from tei_bento.model import onnx_backend


class Shifted:
    """An ONNX network whose outputs are off by a little: what a bad export would give."""

    def __init__(self, network: Any) -> None:
        self.network = network

    def __call__(self, **tensors: Any) -> Any:
        out = self.network(**tensors)
        return type(out)(**{k: v + 1e-2 for k, v in vars(out).items()})


def shifted_build(build: Any) -> Any:
    def build_shifted(*args: Any, **kwargs: Any) -> Any:
        network, report = build(*args, **kwargs)
        return Shifted(network), report

    return build_shifted


if __name__ == "__main__":
    onnx_backend.build_onnx_network = shifted_build(onnx_backend.build_onnx_network)
    cli.main(sys.argv[1:])
