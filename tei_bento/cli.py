"""`tei-bento serve`: TEI's command line (`text-embeddings-router` flags) over uvicorn.

Flags are generated from `Settings`, so every option exists here, in the environment
(TEI's variable names) and in `bentoml serve --arg`, under the same names.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from typing import Any, Sequence

from tei_bento import __version__
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
    return parser


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
    elif args.command == "truss":
        from tei_bento.deploy.truss import run as write_truss

        write_truss(args)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
