"""grpc.health.v1 status per service from the models' health and routes (TEI's watcher)."""

from tei_bento.grpc_api.server import service_health
from tei_bento.tasks.base import Route

EMBEDDER = {Route.EMBED, Route.EMBED_ALL}
RERANKER = {Route.RERANK, Route.PREDICT}


def test_a_service_no_model_serves_is_not_serving_as_in_tei():
    status = service_health({"minilm": True}, {"minilm": EMBEDDER})
    assert status == {
        "": True, "tei.v1.Info": True, "tei.v1.Tokenize": True, "minilm": True,
        "tei.v1.Embed": True, "tei.v1.Rerank": False, "tei.v1.Predict": False,
    }  # fmt: skip


def test_a_model_that_cannot_answer_takes_down_its_services_only():
    status = service_health({"minilm": True, "reranker": False}, {"minilm": EMBEDDER, "reranker": RERANKER})
    assert status["tei.v1.Embed"] and status["minilm"] and status["tei.v1.Info"]
    assert not (status["tei.v1.Rerank"] or status["tei.v1.Predict"] or status["reranker"] or status[""])
