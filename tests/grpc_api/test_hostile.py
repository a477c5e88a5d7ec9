"""Hostile input on every `tei.v1` method, through the real four-model gRPC server.

Generated messages (every field of every request type from the proto's own descriptor:
empty, huge and odd-unicode strings, out-of-range integers, unknown enum values, long
repeated fields, a `model` metadata key that may name a model of the wrong kind or none),
bytes that are not the method's message (a lone surrogate in a string field, an invalid
wire type), and a 10,000-message stream. Each call answers OK or the client's mistake
(INVALID_ARGUMENT, FAILED_PRECONDITION for a model of the wrong kind or a tokenizer
refusal, NOT_FOUND for an unknown model, RESOURCE_EXHAUSTED for too much at once), never
INTERNAL, UNKNOWN, UNAVAILABLE or a deadline; and a well-formed caller running beside the
fuzz keeps getting the reference vector.
"""

from __future__ import annotations

import threading

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from google.protobuf.descriptor import FieldDescriptor

from tei_bento.grpc_api import tei_pb2 as pb
from tei_bento.grpc_api import tei_pb2_grpc as rpc
from tests.reference import assert_same_vectors

CLIENT_MISTAKES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
MODELS = [None, "minilm", "splade", "reranker", "classifier", "nobody", ""]
STEADY_TEXT = "a well-formed request beside the fuzz"
FUZZ = settings(
    max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


def methods() -> list[tuple[str, str, bool, bool, type, type]]:
    """(service, method, client streams, server streams, request class, response class)."""
    found = []
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            request = getattr(pb, method.input_type.name)
            response = getattr(pb, method.output_type.name)
            found.append((service.name, method.name, method.client_streaming, method.server_streaming, request, response))
    return found


METHODS = methods()

WEIRD = ["a", "日本語", "🙂 ", "\u200b", "\x00", "\ufeff", "e\u0301", "Ω≈ç√", "<script>", "\n\t "]
TEXT = st.one_of(
    st.just(""),
    st.text(max_size=40),
    st.lists(st.sampled_from(WEIRD), max_size=30).map("".join),
    st.builds(lambda piece, n: piece * n, st.sampled_from(WEIRD), st.integers(1_000, 40_000)),
)
SCALARS = {
    FieldDescriptor.TYPE_STRING: TEXT,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_UINT32: st.one_of(st.integers(0, 600), st.integers(0, 2**32 - 1)),
}


def field_values(field: FieldDescriptor) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_ENUM:
        one = st.sampled_from([v.number for v in field.enum_type.values] + [7, 12345])
    else:
        one = SCALARS[field.type]
    if field.is_repeated:
        return st.one_of(st.lists(one, max_size=6), st.lists(one, min_size=30, max_size=60))
    return one


def messages_of(cls: type) -> st.SearchStrategy:
    fields = {f.name: st.one_of(st.none(), field_values(f)) for f in cls.DESCRIPTOR.fields}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**{k: v for k, v in kw.items() if v is not None}))


def callable_for(channel: grpc.Channel, service: str, method: str, client_streams: bool, server_streams: bool, request: type, response: type, raw: bool = False):
    """The method as a multi-callable of its shape; `raw` sends and returns bytes as they are."""
    path = f"/tei.v1.{service}/{method}"
    kind = {
        (False, False): channel.unary_unary,
        (True, False): channel.stream_unary,
        (False, True): channel.unary_stream,
        (True, True): channel.stream_stream,
    }[(client_streams, server_streams)]
    if raw:
        return kind(path, request_serializer=lambda data: data, response_deserializer=lambda data: data)
    return kind(path, request_serializer=request.SerializeToString, response_deserializer=response.FromString)


def outcome(call, payload, metadata, server_streams: bool) -> tuple[grpc.StatusCode, str]:
    try:
        answer = call(payload, metadata=metadata, timeout=60)
        if server_streams:
            list(answer)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""


def assert_a_client_mistake(method: str, code: grpc.StatusCode, details: str) -> None:
    assert code in CLIENT_MISTAKES, f"{method}: {code} {details}"
    if code == grpc.StatusCode.FAILED_PRECONDITION:  # TEI's code for backend errors too: not those
        assert "inference failed" not in details, f"{method}: {details}"


@pytest.fixture()
def steady_caller(served, minilm_reference):
    """A well-formed Embed call in a loop beside the test; yields its failures to check."""
    stop, failures, answers = threading.Event(), [], []
    expected = minilm_reference.encode([STEADY_TEXT])

    def loop() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
            embed = rpc.EmbedStub(channel).Embed
            while not stop.is_set():
                try:
                    vector = list(embed(pb.EmbedRequest(inputs=STEADY_TEXT), timeout=60).embeddings)
                    assert_same_vectors([vector], expected)
                    answers.append(1)
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        failures.append(f"{exc.code()} {exc.details()}")
                except AssertionError as exc:
                    failures.append(str(exc))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield failures, answers
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("service", "method", "client_streams", "server_streams", "request_class", "response_class"),
    METHODS, ids=[f"{m[0]}.{m[1]}" for m in METHODS],
)  # fmt: skip
def test_generated_messages_get_a_clear_answer(channel, steady_caller, service, method, client_streams, server_streams, request_class, response_class):
    call = callable_for(channel, service, method, client_streams, server_streams, request_class, response_class)
    seen: list[grpc.StatusCode] = []
    payloads = st.lists(messages_of(request_class), max_size=4) if client_streams else messages_of(request_class)

    @FUZZ
    @given(payload=payloads, model=st.sampled_from(MODELS))
    def check(payload, model) -> None:
        metadata = (("model", model),) if model is not None else None
        code, details = outcome(call, iter(payload) if client_streams else payload, metadata, server_streams)
        seen.append(code)
        assert_a_client_mistake(method, code, details)

    check()
    failures, answers = steady_caller
    assert len(seen) >= (5 if not request_class.DESCRIPTOR.fields else 20)
    assert not failures, failures[:3]
    assert answers, "the well-formed caller got no answer during the fuzz"


def malformed_payloads(request_class: type) -> list[bytes]:
    """Bytes no decoder accepts as this message: an invalid wire type (7), and where field 1
    is a string, that field holding the UTF-8-style encoding of a lone surrogate."""
    payloads = [b"\x0f\xff"]
    first = request_class.DESCRIPTOR.fields_by_number.get(1)
    if first is not None and first.type == FieldDescriptor.TYPE_STRING:
        payloads.append(b"\x0a\x03\xed\xa0\x80")
    return payloads


@pytest.mark.parametrize(
    ("service", "method", "client_streams", "server_streams", "request_class", "response_class"),
    METHODS, ids=[f"{m[0]}.{m[1]}" for m in METHODS],
)  # fmt: skip
def test_bytes_that_are_not_the_message_are_invalid_argument(channel, service, method, client_streams, server_streams, request_class, response_class):
    call = callable_for(channel, service, method, client_streams, server_streams, request_class, response_class, raw=True)
    for payload in malformed_payloads(request_class):
        code, details = outcome(call, iter([payload]) if client_streams else payload, None, server_streams)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, payload, code, details)
        assert details.startswith("Invalid request message"), details


def test_a_malformed_message_midway_through_a_stream_ends_it_as_invalid_argument(channel, minilm_reference):
    identity = lambda data: data  # noqa: E731
    call = channel.stream_stream("/tei.v1.Embed/EmbedStream", request_serializer=identity, response_deserializer=pb.EmbedResponse.FromString)
    good = pb.EmbedRequest(inputs="first, well formed").SerializeToString()
    answers = call(iter([good, b"\x0f\xff", good]), timeout=60)
    got = []
    with pytest.raises(grpc.RpcError) as caught:
        for answer in answers:
            got.append(list(answer.embeddings))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(got) <= 1
    if got:
        assert_same_vectors(got, minilm_reference.encode(["first, well formed"]))


def test_a_10000_message_stream_is_answered_whole_and_in_order(channel, minilm_reference):
    texts = [f"item {i}" for i in range(10_000)]
    call = rpc.EmbedStub(channel).EmbedStream
    answers = [list(a.embeddings) for a in call((pb.EmbedRequest(inputs=t) for t in texts), timeout=600)]
    assert len(answers) == len(texts)
    picks = [0, 1, 4_999, 9_998, 9_999]
    assert_same_vectors([answers[i] for i in picks], minilm_reference.encode([texts[i] for i in picks]))


def test_the_server_serves_after_the_hostile_calls(channel, minilm_reference):
    vector = list(rpc.EmbedStub(channel).Embed(pb.EmbedRequest(inputs="still here"), timeout=60).embeddings)
    assert_same_vectors([vector], minilm_reference.encode(["still here"]))
