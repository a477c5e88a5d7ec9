"""One `tei-bento serve --models ... --grpc-port` process (four models) for every gRPC test."""

from __future__ import annotations

import grpc
import pytest

from tests.server import free_port


@pytest.fixture(scope="session")
def served(four_models_file, server_pool):
    """(the HTTP server, its gRPC port): one process, four models."""
    port = free_port()
    server = server_pool("--models", str(four_models_file), "--max-client-batch-size", "16", "--grpc-port", str(port))
    return server, port


@pytest.fixture(scope="session")
def channel(served):
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield channel
