"""BentoML service: `bentoml serve` (or `bentoml build`) serves TEI's API.

Settings come from TEI's environment variables and from `bentoml serve --arg name=value`
with TEI's flag names (`--arg model_id=BAAI/bge-small-en-v1.5 --arg max_batch_tokens=8192`;
several models: `--arg model_id=a,b` or `--arg models=models.yaml`). The FastAPI app
carrying TEI's contract is mounted at `/`; BentoML contributes the process model, /livez,
/readyz (the engines' health, `__is_ready__`), its own /metrics, `bentoml build` and
`containerize`. Typed `@bentoml.api` methods (tei_bento/bento_api.py, under /bento/) serve
BentoML's clients and `bentoml.depends(TEIBento)`. Batching is the engine's token-budget
batcher, so BentoML's adaptive batching is not used in front of it.
"""

from __future__ import annotations

import re

import bentoml

from tei_bento.api.app import attach_models, create_app
from tei_bento.bento import pin_worker, service_config
from tei_bento.bento_api import TEIBentoAPI
from tei_bento.bento_guard import MultipartBoundaryGuard
from tei_bento.engine.models import Models
from tei_bento.logs import setup_logging
from tei_bento.settings import Settings

SETTINGS = Settings.from_sources(vars(bentoml.use_arguments()))
app = create_app(SETTINGS)


@bentoml.service(**service_config(SETTINGS))
@bentoml.asgi_app(app, path="/")
class TEIBento(TEIBentoAPI):
    """Loads the models once per worker and hands them to the mounted app; the typed API
    methods (`embed`, `rerank`, ... under /bento/) come from TEIBentoAPI."""

    def __init__(self) -> None:
        setup_logging(json_output=SETTINGS.json_output)
        pin_worker(SETTINGS, bentoml.server_context.worker_index)  # one GPU per worker
        self.models = Models.load(SETTINGS.model_settings())
        self.context = app.state.context
        attach_models(app, self.models)

    async def __is_ready__(self) -> bool:
        """BentoML's /readyz: ready while every model answers."""
        return all((await self.models.health()).values())

    @bentoml.on_shutdown
    async def stop_engines(self) -> None:
        """Stop every engine and flush the tracer (idempotent with the app's lifespan)."""
        await app.state.context.shutdown()

    async def __metrics__(self, content: str) -> str:
        """BentoML's metrics with TEI's. BentoML already collects the default registry,
        which holds TEI's metrics (and, with several workers, aggregates them across
        processes); TEI's are appended only where its output lacks them. The permit gauges
        are read live from this worker's engines, which multiprocess files cannot carry."""
        from prometheus_client import generate_latest

        metrics = app.state.context.metrics
        if not re.search(r"^# HELP te_", content, re.MULTILINE):
            return content + generate_latest(metrics.registry).decode()
        if "te_permits_in_use" not in content:
            content += generate_latest(metrics.permit_registry).decode()
        return content


TEIBento.add_asgi_middleware(MultipartBoundaryGuard)
