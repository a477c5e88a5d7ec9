"""`tei-bento serve`: TEI's command line (`text-embeddings-router` flags) over uvicorn.

Flags are generated from `Settings`, so every option exists here, in the environment
(TEI's variable names) and in `bentoml serve --arg`, under the same names.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from tei_bento import __version__
from tei_bento.corpus.readers import FORMATS
from tei_bento.settings import Settings

TRUE_WORDS = {"1", "true", "yes", "on"}


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in TRUE_WORDS or lowered in {"0", "false", "no", "off"}:
        return lowered in TRUE_WORDS
    raise argparse.ArgumentTypeError(f"expected true or false, got `{value}`")


def _flag_kind(annotation: Any) -> str:
    args = typing.get_args(annotation)
    flat = {annotation, *args}
    if bool in flat:
        return "bool"
    if any(typing.get_origin(a) is list for a in flat):
        return "list"
    if int in flat:
        return "int"
    return "str"


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        names = [flag, "-p"] if name == "port" else [flag]
        kind = _flag_kind(field.annotation)
        help_text = f"{field.description or ''} [env: {name.upper()}]"
        if kind == "bool":
            parser.add_argument(
                *names, nargs="?", const=True, type=_bool, default=None, help=help_text
            )
        elif kind == "list":
            parser.add_argument(*names, action="append", default=None, help=help_text)
        else:
            parser.add_argument(
                *names, type=int if kind == "int" else str, default=None, help=help_text
            )
    parser.add_argument("--hf-api-token", dest="hf_token", default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tei-bento", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Serve a model with TEI's HTTP API (uvicorn).")
    add_settings_arguments(serve)
    serve.add_argument("--log-level", default="info", help="uvicorn log level")
    from tei_bento.deploy.truss import add_arguments as add_truss_arguments

    add_truss_arguments(commands.add_parser("truss", help="Write a Truss for Baseten."))
    corpus = commands.add_parser(
        "embed-corpus",
        help="Embed a corpus file (JSONL, text, CSV, Parquet) into Parquet shards, resumably.",
    )
    add_corpus_arguments(corpus)
    add_settings_arguments(corpus)
    return parser


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="JSONL (a `text` field), text (a line each), CSV or Parquet")
    parser.add_argument("output", type=Path, help="folder of part-NNNNN.parquet shards (id, line, [text], vector)")
    parser.add_argument("--format", choices=FORMATS, default=None, help="default: by the file's suffix")
    parser.add_argument("--text-field", default="text", help="JSONL field / CSV or Parquet column (default: text)")
    parser.add_argument("--id-field", default=None, help="field holding each row's id (default: its row number)")
    parser.add_argument("--keep-text", action="store_true", help="also write each text")
    parser.add_argument("--shard-size", type=int, default=10_000, help="rows per shard, and the most held in memory")
    parser.add_argument("--on-bad-row", choices=("fail", "skip"), default="fail", help="a bad row (not JSON, no text, ...)")
    parser.add_argument("--url", default=None, help="embed with a running server's /embed instead of in-process")
    parser.add_argument("--embedding-type", default="float", choices=("float", "int8", "uint8", "binary", "ubinary"))
    parser.add_argument("--normalize", type=_bool, default=True)
    parser.add_argument("--truncate", type=_bool, default=None, help="default: the server's / model's rule")
    parser.add_argument("--prompt-name", default=None)
    parser.add_argument("--model", default=None, help="served model name, where several are served")
    parser.add_argument("--overwrite", action="store_true", help="start again in an output folder made differently")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--ray", action="store_true", help="run on Ray Data (pip install 'ray[data]')")
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
    parser.add_argument("--ray-num-cpus", type=int, default=None, help="CPUs of the local Ray cluster")
    parser.add_argument("--ray-concurrency", type=int, default=1, help="Ray workers, one engine each")
    parser.add_argument("--ray-num-gpus", type=float, default=0, help="GPUs per Ray worker")
    parser.add_argument("--ray-batch-size", type=int, default=1024, help="rows per map_batches call")


def embed_corpus(args: argparse.Namespace) -> None:
    import json

    from tei_bento.corpus.embedders import EmbedOptions, InProcessEmbedder, RemoteEmbedder
    from tei_bento.corpus.job import BadRowError, CorpusJob, run
    from tei_bento.corpus.readers import detect_format

    settings = settings_from_args(args)
    configure_logging(settings, "warning")
    options = EmbedOptions(args.normalize, args.truncate, args.prompt_name, args.embedding_type, args.model)
    job = CorpusJob(
        input=args.input,
        output=args.output,
        fmt=detect_format(args.input, args.format),
        text_field=args.text_field,
        id_field=args.id_field,
        keep_text=args.keep_text,
        shard_size=args.shard_size,
        on_bad_row=args.on_bad_row,
        options=options,
        overwrite=args.overwrite,
        progress_bar=not args.no_progress,
    )
    if args.ray:
        from tei_bento.corpus.on_ray import run_on_ray

        result = run_on_ray(
            args.input, args.output, job.fmt, settings, options,
            text_field=args.text_field, id_field=args.id_field, keep_text=args.keep_text,
            on_bad_row=args.on_bad_row, address=args.ray_address, num_cpus=args.ray_num_cpus,
            concurrency=args.ray_concurrency, num_gpus=args.ray_num_gpus, batch_size=args.ray_batch_size,
        )  # fmt: skip
        print(json.dumps(result))
        return
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else None
    factory = (lambda: RemoteEmbedder(args.url, options, headers)) if args.url else (lambda: InProcessEmbedder(settings, options))
    try:
        summary = run(job, factory)
    except BadRowError as exc:
        raise SystemExit(f"tei-bento: bad row: {exc}") from exc
    print(json.dumps(summary.as_dict()))


def configure_logging(settings: Settings, level: str = "info") -> None:
    from tei_bento.logs import setup_logging

    setup_logging(json_output=settings.json_output, level=level.upper())


def serve_prometheus(settings: Settings, registry: object) -> None:
    """Metrics on --prometheus-port too (TEI binds it); best effort, /metrics always works."""
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.prometheus_port, addr=settings.hostname, registry=registry)
    except OSError as exc:
        logging.getLogger("tei_bento").warning(
            "Prometheus port %s unavailable (%s); metrics stay on /metrics",
            settings.prometheus_port,
            exc,
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags given on the command line win over environment variables and defaults."""
    overrides = {
        key: value
        for key, value in vars(args).items()
        if key in Settings.model_fields and value is not None
    }
    return Settings.from_sources(overrides)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from tei_bento.api.app import create_app
    from tei_bento.engine.models import Models

    settings = settings_from_args(args)
    configure_logging(settings, args.log_level)
    try:
        models = Models.load(settings.model_settings())
    except Exception as exc:
        logging.getLogger("tei_bento").error("Could not load the models: %s", exc)
        raise SystemExit(f"tei-bento: {exc}") from exc
    app = create_app(settings, models)
    serve_prometheus(settings, app.state.context.metrics.registry)
    logging.getLogger("tei_bento").info(
        "Ready: serving %s on http://%s:%s",
        ", ".join(models.names),
        settings.hostname,
        settings.port,
    )
    uvicorn.run(
        app,
        host=settings.hostname,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        log_config=None,  # uvicorn's loggers go through ours (JSON lines with --json-output)
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
    elif args.command == "embed-corpus":
        embed_corpus(args)
    elif args.command == "truss":
        from tei_bento.deploy.truss import run as write_truss

        write_truss(args)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
