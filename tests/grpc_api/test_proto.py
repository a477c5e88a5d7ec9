"""TEI's gRPC contract (package tei.v1): the committed proto declares TEI's services and
methods with their streaming kinds, and the committed Python modules are what
`python -m tei_bento.grpc_api.generate` writes from it."""

from __future__ import annotations

from tei_bento.grpc_api import generate

# (service, method, client streams, server streams), as TEI's proto/tei.proto declares them
TEI_METHODS = {
    ("Info", "Info", False, False),
    ("Embed", "Embed", False, False),
    ("Embed", "EmbedStream", True, True),
    ("Embed", "EmbedSparse", False, False),
    ("Embed", "EmbedSparseStream", True, True),
    ("Embed", "EmbedAll", False, False),
    ("Embed", "EmbedAllStream", True, True),
    ("Predict", "Predict", False, False),
    ("Predict", "PredictPair", False, False),
    ("Predict", "PredictStream", True, True),
    ("Predict", "PredictPairStream", True, True),
    ("Rerank", "Rerank", False, False),
    ("Rerank", "RerankStream", True, False),
    ("Tokenize", "Tokenize", False, False),
    ("Tokenize", "TokenizeStream", True, True),
    ("Tokenize", "Decode", False, False),
    ("Tokenize", "DecodeStream", True, True),
}


def test_the_generated_modules_are_current():
    assert generate.stale() == []


def test_the_proto_declares_teis_services_and_methods():
    from tei_bento.grpc_api import tei_pb2

    file = tei_pb2.DESCRIPTOR
    assert file.package == "tei.v1"
    declared = {
        (service.name, method.name, method.client_streaming, method.server_streaming)
        for service in file.services_by_name.values()
        for method in service.methods
    }
    assert declared == TEI_METHODS


def test_field_numbers_of_the_messages_clients_fill_in():
    from tei_bento.grpc_api import tei_pb2

    def fields(message) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert fields(tei_pb2.EmbedRequest) == {
        "inputs": 1, "truncate": 2, "normalize": 3, "truncation_direction": 4, "prompt_name": 5, "dimensions": 6,
    }  # fmt: skip
    assert fields(tei_pb2.RerankRequest) == {
        "query": 1, "texts": 2, "truncate": 3, "raw_scores": 4, "return_text": 5, "truncation_direction": 6,
    }  # fmt: skip
    assert fields(tei_pb2.PredictPairRequest) == {"inputs": 1, "truncate": 2, "raw_scores": 3, "truncation_direction": 4}
    assert fields(tei_pb2.Metadata) == {
        "compute_chars": 1, "compute_tokens": 2, "total_time_ns": 3,
        "tokenization_time_ns": 4, "queue_time_ns": 5, "inference_time_ns": 6,
    }  # fmt: skip
    assert fields(tei_pb2.SimpleToken) == {"id": 1, "text": 2, "special": 3, "start": 4, "stop": 5}
    assert fields(tei_pb2.DecodeRequest) == {"ids": 1, "skip_special_tokens": 2}
